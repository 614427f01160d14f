import ArgumentParser
import CGTCheckpoint
import CGTDNNL
import CGTData
import CGTEvaluation
import CGTExperiments
import CGTFiles
import CGTJob
import CGTKernels
import CGTMPI
import CGTModel
import CGTTraining
import Foundation

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract:
            "Early-exit inference of a checkpoint on a test split: routing, accuracy, cost and confidence quality.",
        discussion: """
            Writes eval.json, per_class_routing.csv, reliability.csv and samples.csv (and sweep.csv with --sweep) to --out. \
            Under mpirun the test split and the BatchNorm re-estimation are sharded over the ranks; the \
            numbers are those of one process. Thresholds chosen with --target-accuracy or --budget are \
            chosen on the validation split, or on the training split when the file has none, never on the test split.
            """)

    @Option(help: "The checkpoint (.h5) to evaluate.")
    var checkpoint: String

    @OptionGroup var dataset: DatasetOverride

    @Option(help: "Exit threshold at every exit (default: the checkpoint's exit policy).")
    var tau: Float?

    @Option(help: "One threshold per exit, comma-separated (instead of --tau).")
    var thresholds: String?

    @Option(
        help:
            "Exit criterion: max_probability (the paper), entropy (1 - normalised entropy) or margin (top-1 minus top-2); default the checkpoint's."
    )
    var criterion: ExitCriterion?

    @Option(help: "When no exit fires: last (the paper) or most_confident; default the checkpoint's.")
    var fallback: ExitFallback?

    @Flag(
        help:
            "Store the exit policy in the checkpoint file: the one chosen by --target-accuracy or --budget, else the one evaluated."
    )
    var savePolicy = false

    @Option(help: "Sweep one threshold at every exit over start:stop:step, e.g. 0.5:0.99:0.01.")
    var sweep: String?

    @Option(help: "Choose the cheapest threshold reaching this accuracy (on validation or training data).")
    var targetAccuracy: Double?

    @Option(help: "Choose the most accurate threshold within this relative cost (on validation or training data).")
    var budget: Double?

    @Option(
        help:
            "Choose the cheapest threshold whose accuracy loss against the full network is at most this, certified on the validation split with probability 1 - --delta (Learn then Test)."
    )
    var risk: Double?

    @Option(help: "With --risk: the probability with which the guarantee may fail.")
    var delta = 0.1

    @Option(help: "With --risk: check the guarantee on this many random halvings of the test split (0: no).")
    var riskResplits = 0

    @Option(
        help:
            "MSDNet's budgeted protocol: thresholds fitted on the validation (or training) split for exit proportions q^k, q 0.05-2.00; the curve's mean accuracy over this relative-cost range LO:HI, e.g. 0.3:0.9."
    )
    var budgeted: String?

    @Option(help: "Measure inference latency with real early exits on this many test samples (0: no).")
    var latency = 0

    @Option(help: "Batch size of the batched latency measurement.")
    var latencyBatch = 256

    @Flag(
        inversion: .prefixedNo,
        help: ArgumentHelp(
            "Re-estimate BatchNorm statistics on the training split first, and write the model so changed as <out>/model.h5.",
            discussion:
                "Without it the checkpoint's own statistics are used: the ones training's evaluation re-estimated (eval.bn_recalibration), so the file is the model reported."
        ))
    var bnRecalibration = false

    @Option(help: "Samples per inference batch.")
    var batchSize = 1024

    @Option(help: "Folder for the results (default: <run>/eval next to the checkpoint's checkpoints/ folder).")
    var out: String?

    func validate() throws {
        if let tau, !(tau > 0 && tau <= 1) { throw ValidationError("--tau must be in (0, 1], got \(tau)") }
        if batchSize < 1 || batchSize > 1 << 24 { throw ValidationError("--batch-size must be in [1, 16777216]") }
        if savePolicy && bnRecalibration {
            throw ValidationError(
                "--save-policy stores the policy in the checkpoint, whose BatchNorm statistics --bn-recalibration changes; evaluate <out>/model.h5 with --save-policy instead"
            )
        }
        if savePolicy && [targetAccuracy != nil, budget != nil, risk != nil].filter({ $0 }).count > 1 {
            throw ValidationError("--save-policy stores one policy: give one of --target-accuracy, --budget and --risk")
        }
        if let risk, !(risk > 0 && risk < 1) { throw ValidationError("--risk must be in (0, 1)") }
        if let budgeted, budgetRange(budgeted) == nil {
            throw ValidationError("--budgeted needs LO:HI with 0 <= LO < HI <= 1 (relative cost), got '\(budgeted)'")
        }
        if !(delta > 0 && delta < 1) { throw ValidationError("--delta must be in (0, 1)") }
        if risk == nil && riskResplits != 0 { throw ValidationError("--risk-resplits goes with --risk") }
        if riskResplits < 0 || riskResplits > 10_000 { throw ValidationError("--risk-resplits must be in [0, 10000]") }
        if let thresholds {
            guard let values = thresholdValues, !values.isEmpty, values.allSatisfy({ $0 >= 0 && $0 <= 1 }) else {
                throw ValidationError("--thresholds needs comma-separated values in [0, 1], got '\(thresholds)'")
            }
            if tau != nil { throw ValidationError("give --tau or --thresholds, not both") }
        }
        if let sweep, ThresholdSweep.range(sweep) == nil {
            throw ValidationError("--sweep needs start:stop:step within [0, 1], got '\(sweep)'")
        }
        if let targetAccuracy, !(targetAccuracy > 0 && targetAccuracy <= 1) {
            throw ValidationError("--target-accuracy must be in (0, 1]")
        }
        if let budget, !(budget > 0) { throw ValidationError("--budget must be a positive relative cost") }
        if latency < 0 || latencyBatch < 1 || latencyBatch > 1 << 24 {
            throw ValidationError("--latency must be >= 0 and --latency-batch in [1, 16777216]")
        }
    }

    func run() throws {
        try underMPI { world in try evaluate(world: world) }
    }

    /// The evaluation on `world`, inside an MPI session that may hold several (`cgt report` of several runs).
    func evaluate(world: Communicator) throws {
        // Loading can fail on one rank alone; the rest runs collectives on every rank.
        let model = try world.collectively { try load(ranks: world.size) }
        // At batch 1, a piece every early-exit pass may run (primitives of other sizes are made as met).
        if world.isRoot,
            let warning = PrimitiveImplementation.referenceWarning(
                model.network.primitiveImplementations(batch: 1).filter(\.runsInInference))
        {
            FileHandle.standardError.write(Data("cgt: warning: \(warning)\n".utf8))
        }
        defer { try? model.reader.close() }
        try report(model, world: world)
    }

    /// The checkpoint, its network with the stored weights, and the data.
    private struct LoadedModel {
        let stored: Checkpoint
        let network: EarlyExitNetwork
        let reader: DatasetReader
        let policy: ExitPolicy
    }

    /// Loads on one of `ranks` ranks; the network must fit the memory budget at the largest
    /// batch it will see (evaluation, or a rank's part of a BatchNorm re-estimation batch).
    private func load(ranks: Int) throws -> LoadedModel {
        guard FileManager.default.fileExists(atPath: checkpoint) else {
            throw CheckpointError(file: checkpoint, "no such file")
        }
        try OutputFolder.check(out ?? defaultFolder())
        let stored = try Checkpoint.read(from: checkpoint)
        DNNLRuntime.setThreadCount(stored.job.runtime.blasThreads)
        let dataPath = dataset.path(for: stored.job)
        if dataset.data == nil && !FileManager.default.fileExists(atPath: dataPath) {
            throw CheckpointError(
                file: checkpoint,
                "its data.path \(dataPath) does not exist here\(dataPath.hasPrefix("/") ? "" : " (a relative path is read from the working directory)"); give the data file with --data"
            )
        }
        let reader = try DatasetReader(path: dataPath)
        let network = try stored.restoredNetwork(for: reader, dataPath: dataPath, source: checkpoint)
        if let refusal = stored.job.modelSizeRefusal(
            featureShape: stored.featureShape, classes: stored.classNames.count, batch: evaluationBatch(reader),
            training: false)
        {
            throw ValidationError("--batch-size \(batchSize): \(refusal); give a smaller --batch-size")
        }
        let recalibrationBatch = (stored.job.training.batchSize + ranks - 1) / ranks
        if bnRecalibration,
            let refusal = stored.job.modelSizeRefusal(
                featureShape: stored.featureShape, classes: stored.classNames.count, batch: recalibrationBatch,
                training: false)
        {
            throw CheckpointError(
                file: checkpoint,
                "--bn-recalibration with the job's training.batch_size \(stored.job.training.batchSize): \(refusal)")
        }
        return LoadedModel(
            stored: stored, network: network, reader: reader,
            policy: try exitPolicy(stored: stored.exitPolicy, exits: network.exitCount))
    }

    private func report(_ model: LoadedModel, world: Communicator) throws {
        let (stored, network, reader, policy) = (model.stored, model.network, model.reader, model.policy)
        let exits = network.exitCount
        var evaluation = DistributedEvaluation(
            network: network, communicator: world,
            batchSize: evaluationBatch(reader), classGroups: stored.classGroups)
        // A rank that stops answering ends the evaluation as it ends training.
        let stallWatch = world.size > 1 ? StallWatch(rank: world.rank, runtime: stored.job.runtime) : nil
        defer { stallWatch?.stop() }
        evaluation.watch = stallWatch?.collectiveWatch
        if bnRecalibration {
            evaluation.recalibrateBatchNorm(on: try evaluation.readRecalibrationShare(job: stored.job, reader: reader))
        }
        let request = EvaluationRequest(
            policy: policy, sweep: sweep.flatMap(ThresholdSweep.range), targetAccuracy: targetAccuracy, budget: budget,
            risk: risk.map { RiskControl(epsilon: $0, delta: delta) }, riskResplits: riskResplits,
            budgeted: budgeted.flatMap(budgetRange))
        var report = try evaluation.report(reader: reader, classNames: stored.classNames, request: request)
        guard world.isRoot else { return }
        let folder = out ?? defaultFolder()
        try OutputFolder.create(folder)
        // The report names the file that holds the model it measured.
        var evaluated = (checkpoint: checkpoint, model: stored)
        if bnRecalibration {
            evaluated = ("\(folder)/model.h5", stored.withEvaluatedBuffers(of: network))
            try evaluated.model.write(to: evaluated.checkpoint)
        }
        let dataPath = dataset.path(for: stored.job)
        report.provenance = EvaluationProvenance(
            checkpoint: URL(fileURLWithPath: evaluated.checkpoint).standardizedFileURL.path, epoch: stored.epoch,
            batchNormStatistics: evaluated.model.batchNormStatistics,
            data: URL(fileURLWithPath: dataPath).standardizedFileURL.path,
            dataSHA256: try SourceFile.sha256(ofFileAt: dataPath), split: DatasetLayout.test)
        if latency > 0 {
            // Rank 0 alone: timings are of one process on one core.
            let inference = EarlyExitInference(
                network: network, policy: policy, maxBatch: max(1, min(latencyBatch, latency)))
            report.latency = InferenceLatency.measure(
                inference,
                split: try reader.read(
                    split: DatasetLayout.test, rows: 0..<min(latency, reader.splitSizes[DatasetLayout.test] ?? 0)),
                samples: latency, batch: min(latencyBatch, latency), relativeCost: report.statistics.relativeCost)
        }
        print(RoutingTable.render(report.statistics))
        print(report.summary)
        for (name, contents) in try report.files() {
            try AtomicFile.write(contents, to: "\(folder)/\(name)")
        }
        print(
            "wrote \(folder)/eval.json and its CSV files\(bnRecalibration ? ", and the model it measured, \(folder)/model.h5" : "")"
        )
        if savePolicy {
            var chosen = policy
            if let riskControl = report.riskControl {
                guard let threshold = riskControl.choice.threshold else {
                    throw ValidationError("--save-policy: no threshold of the sweep certifies \(riskControl.guarantee)")
                }
                chosen.thresholds = Array(repeating: Float(threshold), count: exits)
            } else if let choice = report.choices.first {
                guard let threshold = choice.threshold else {
                    throw ValidationError("--save-policy: \(choice.goal) is not reached by any threshold of the sweep")
                }
                chosen.thresholds = Array(repeating: Float(threshold), count: exits)
            }
            try save(chosen, evaluated: stored)
        }
    }

    /// `--budgeted LO:HI` as a range of relative cost (nil unless 0 <= LO < HI <= 1).
    private func budgetRange(_ text: String) -> ClosedRange<Double>? {
        let parts = text.split(separator: ":").map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 2, let low = parts[0], let high = parts[1], low >= 0, low < high, high <= 1 else {
            return nil
        }
        return low...high
    }

    /// Samples per inference batch: `--batch-size`, or the largest split when that is smaller.
    private func evaluationBatch(_ reader: DatasetReader) -> Int {
        max(1, min(batchSize, reader.splitSizes.values.max() ?? 1))
    }

    /// `--thresholds` as numbers (nil if absent or if one of them is not a number).
    private var thresholdValues: [Float]? {
        guard let parts = thresholds?.split(separator: ",") else { return nil }
        let values = parts.compactMap { Float($0.trimmingCharacters(in: .whitespaces)) }
        return values.count == parts.count ? values : nil
    }

    /// The policy the options give, on top of the checkpoint's stored one.
    private func exitPolicy(stored: ExitPolicy, exits: Int) throws -> ExitPolicy {
        var policy = stored
        if let criterion { policy.criterion = criterion }
        if let fallback { policy.fallback = fallback }
        if let tau { policy.thresholds = Array(repeating: tau, count: exits) }
        if let values = thresholdValues {
            guard values.count == exits else {
                throw ValidationError("--thresholds gives \(values.count) values, the model has \(exits) exits")
            }
            policy.thresholds = values
        }
        return policy
    }

    /// Writes `policy` into the checkpoint file (atomically: the file is replaced, so a hard
    /// link such as last.h5 then names the new file and the epoch file keeps the old policy).
    private func save(_ policy: ExitPolicy, evaluated: Checkpoint) throws {
        // The run folder is locked while the file is replaced, and the policy is stored only
        // into the checkpoint it was chosen on (a training may have moved last.h5 on meanwhile).
        let lock = try RunDirectory(path: runFolder()).lock()
        defer { withExtendedLifetime(lock) {} }
        var stored = try Checkpoint.read(from: checkpoint)
        guard stored.epoch == evaluated.epoch && stored.globalStep == evaluated.globalStep else {
            throw CheckpointError(
                file: checkpoint,
                "changed while it was evaluated (now epoch \(stored.epoch), evaluated epoch \(evaluated.epoch)): the policy was not stored; evaluate again"
            )
        }
        stored.exitPolicy = policy
        try stored.write(to: checkpoint)
        print(
            "stored the exit policy in \(checkpoint): \(policy.criterion.rawValue), thresholds \(policy.thresholds), fallback \(policy.fallback.rawValue)"
        )
    }

    private func defaultFolder() -> String { URL(fileURLWithPath: runFolder()).appendingPathComponent("eval").path }

    /// The run folder the checkpoint belongs to (the folder above checkpoints/, else its own).
    private func runFolder() -> String {
        let url = URL(fileURLWithPath: checkpoint).deletingLastPathComponent()
        return (url.lastPathComponent == "checkpoints" ? url.deletingLastPathComponent() : url).path
    }
}
