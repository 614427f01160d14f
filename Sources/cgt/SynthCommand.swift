import ArgumentParser
import CGTData
import CGTFiles
import Foundation

struct SynthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth",
        abstract:
            "Write a synthetic classification dataset (Gaussian classes, easy and hard samples) in cgt's HDF5 layout.")

    @Option(help: "The file to write.")
    var out: String

    @Option(help: "Features per sample.")
    var features = 200

    @Option(help: "Number of classes.")
    var classes = 16

    @Option(help: "Training samples.")
    var train = 2048

    @Option(help: "Test samples.")
    var test = 512

    @Option(help: "Spread of the classes around their centres (larger is harder).")
    var spread: Float = 4.0

    @Option(help: "Random seed.")
    var seed: UInt64 = 0

    @Option(help: "gzip: shuffle + deflate level 4 on every chunk; none: chunks stored uncompressed.")
    var compression = DatasetCompression.gzip

    @Flag(help: "Replace --out if it exists (atomically: the old file stays until the new one is complete).")
    var force = false

    func validate() throws {
        guard features > 0, classes >= 2, train >= 2, test >= 1 else {
            throw ValidationError("needs --features >= 1, --classes >= 2, --train >= 2 and --test >= 1")
        }
        guard spread > 0 else { throw ValidationError("--spread must be positive") }
        guard classes <= DatasetLayout.maxClasses else {
            throw ValidationError("--classes must be at most \(DatasetLayout.maxClasses)")
        }
        let (samples, overflow) = train.addingReportingOverflow(test)
        if let refusal = overflow
            ? "overflows" : MemoryBudget.refusal([samples, features], elementSize: 2 * MemoryLayout<Float>.size)
        {
            throw ValidationError("--train \(train) + --test \(test) samples of --features \(features): \(refusal)")
        }
        if let refusal = MemoryBudget.refusal([classes, features], elementSize: MemoryLayout<Float>.size) {
            throw ValidationError("--classes \(classes) x --features \(features) centres: \(refusal)")
        }
    }

    func run() throws {
        try reportingFailures {
            if !force && FileManager.default.fileExists(atPath: out) {
                throw DatasetError(file: out, object: "", "already exists; pass --force to replace it")
            }
            let data = SyntheticDataset.make(
                features: features, classes: classes, trainCount: train, testCount: test, seed: seed, spread: spread)
            // A signal stops the write between chunks and removes its temporary file.
            try SignalStop.catching {
                try DatasetWriter.write(
                    to: out, classNames: data.classNames, featureShape: [features], splits: [data.train, data.test],
                    stringAttributes: [
                        "source": "cgt synth", "command_line": CommandLine.arguments.joined(separator: " "),
                    ],
                    numberAttributes: ["synthetic_seed": [Double(seed)], "synthetic_spread": [Double(spread)]],
                    compression: compression)
            }
            print("wrote \(out): \(train) train and \(test) test samples, \(features) features, \(classes) classes")
        }
    }
}
