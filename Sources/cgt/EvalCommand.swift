import ArgumentParser
import CGTData
import CGTKernels
import CGTMPI
import CGTTraining
import Foundation

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Early-exit inference of a checkpoint on a test split: routing, accuracy and cost, written to eval.json.")

    @Option(help: "The checkpoint (.h5) to evaluate.")
    var checkpoint: String

    @Option(help: "The dataset file (default: the data.path of the checkpoint's job).")
    var data: String?

    @Option(help: "Exit threshold: the first exit whose confidence reaches it answers (default: the job's eval.tau).")
    var tau: Float?

    @Flag(inversion: .prefixedNo, help: "Re-estimate BatchNorm statistics on the training split first.")
    var bnRecalibration = true

    @Option(help: "Samples per inference batch.")
    var batchSize = 1024

    @Option(help: "Folder for eval.json (default: <run>/eval next to the checkpoint's checkpoints/ folder).")
    var out: String?

    func validate() throws {
        if let tau, !(tau > 0 && tau <= 1) { throw ValidationError("--tau must be in (0, 1], got \(tau)") }
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
    }

    func run() throws {
        do {
            try MPIEnvironment.run(report: { _ = reportFailure($0) }) { _ in try evaluate() }
        } catch {
            throw reportFailure(error)
        }
    }

    private func evaluate() throws {
        guard FileManager.default.fileExists(atPath: checkpoint) else { throw CheckpointError(file: checkpoint, "no such file") }
        let stored = try Checkpoint.read(from: checkpoint)
        MatrixMultiply.setThreadCount(stored.job.runtime.blasThreads)
        let dataPath = data ?? stored.job.data.path
        let reader = try DatasetReader(path: dataPath)
        defer { try? reader.close() }
        guard reader.featureShape == stored.featureShape else {
            throw DatasetError(file: dataPath, object: "/", "feature_shape \(reader.featureShape) differs from the checkpoint's \(stored.featureShape)")
        }
        guard reader.classes == stored.classNames.count else {
            throw DatasetError(file: dataPath, object: "/", "num_classes \(reader.classes) differs from the checkpoint's \(stored.classNames.count)")
        }
        let network = stored.job.makeNetwork(featureShape: reader.featureShape, classes: reader.classes)
        try stored.restore(into: network, optimizer: nil, source: checkpoint)
        let test = try reader.read(split: DatasetLayout.test)
        let train = bnRecalibration ? try reader.read(split: DatasetLayout.train) : nil
        let threshold = tau ?? stored.job.eval.tau
        let batches = train.map { stored.job.recalibrationBatches(trainCount: $0.count) } ?? []
        let statistics = Evaluator(network: network, batchSize: min(batchSize, test.count), classGroups: stored.classGroups)
            .evaluate(test: test, train: train, batches: batches, tau: threshold)
        print(RoutingTable.render(statistics))
        let folder = out ?? defaultFolder()
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try writeFileAtomically(try encoder.encode(statistics), to: "\(folder)/eval.json")
        print("wrote \(folder)/eval.json")
    }

    private func defaultFolder() -> String {
        let url = URL(fileURLWithPath: checkpoint).deletingLastPathComponent()
        let run = url.lastPathComponent == "checkpoints" ? url.deletingLastPathComponent() : url
        return run.appendingPathComponent("eval").path
    }
}
