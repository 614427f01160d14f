import ArgumentParser
import CGTDNNL
import CGTEvaluation
import CGTExperiments
import CGTJob
import CGTKernels
import CGTMPI
import CGTModel
import CGTTraining
import Foundation

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract:
            "Measure training throughput of the paper's MLP or CNN against a bare dnnl_sgemm loop of the same matrix products and the core's FMA peak.",
        discussion: """
            Under mpirun with several ranks, measures data-parallel scaling instead: 1 rank vs all ranks at the \
            same global batch (--batch), with and without all-reduce overlap, and a bare MPI_Allreduce of the gradients.

            With --data FILE, measures reading instead: every rank reads its rows of one epoch of FILE's train split as a \
            training run on that many ranks does (--shuffle, default blocks as in training; --batch samples per step, \
            default 256; epoch 0 of --seed), and rank 0 prints the fraction of the split each rank decompressed (mean and \
            worst rank), MB/s read (stored bytes), MB/s decompressed and samples/s per rank. Run it under mpirun -np 1, 2, 4, 8 \
            (--oversubscribe) to see how reading scales.
            """)

    @Option(help: "Measure reading one training epoch of this dataset file (see above) instead of training.")
    var data: String?

    @Flag(help: "With --data: drop the file's pages from the page cache first, so it is read from the disk.")
    var cold = false

    @Option(
        help:
            "With --data: blocks (its piece of the permuted chunks, as training.shuffle: blocks), global (its part of every batch) or local (a contiguous shard)."
    )
    var shuffle = TrainingSection().shuffle

    @Option(help: "With --data: the seed of the epoch's shuffle (training.seed).")
    var seed: UInt64 = 0

    @Flag(
        help:
            "With --data: measure how well the epoch orders of training mix the split (global, blocks held, blocks streamed through shuffle buffers of several sizes) in one process, for --ranks ranks."
    )
    var shuffleQuality = false

    @Option(help: "With --shuffle-quality: the ranks whose orders are measured.")
    var ranks = 1

    @Option(help: "With --shuffle-quality: the epochs measured (from epoch 0).")
    var epochs = 3

    @Option(
        help:
            "mlp (the paper's Indian Pines network), cnn (its Fashion-MNIST network) or resnet (the residual backbone of jobs/fashion_mnist/resnet_*.yaml)."
    )
    var model = ModelKind.mlp

    @Option(
        help:
            "The objective of the timed steps: softcgt, branchynet, or distillation, equilibrium or boosting (each on BranchyNet's fixed weights)."
    )
    var method = BenchmarkMethod.softCGT

    @Flag(help: "Time every --method in turn and print each one's ms per step next to BranchyNet's (one rank).")
    var compareMethods = false

    @Option(help: "Samples per step (default 256 for the MLP, 128 for the CNN and the ResNet).")
    var batch: Int?

    @Option(help: "Timed steps (after as many warm-up steps).")
    var steps = 300

    @Option(help: "oneDNN threads.")
    var threads = 1

    @Option(help: "MLP: input features.")
    var inputs = 200
    @Option(help: "MLP: hidden widths, comma-separated.")
    var hidden = "256,256,256,256,256"
    @Option(help: "CNN: channels of the blocks; ResNet: of the stages (default 16,32,64), comma-separated.")
    var channels: String?
    @Option(help: "ResNet: channels of the stem convolution.")
    var stemChannels = 16
    @Option(help: "CNN: input image as channels,height,width.")
    var image = "1,28,28"
    @Option(help: "1-based blocks followed by an exit, comma-separated (default 1,3,5 for the MLP, 1,2,3 for the CNN).")
    var exits: String?
    @Option(help: "Number of classes (default 16 for the MLP, 10 for the CNN).")
    var classes: Int?

    @Option(help: "Gradient all-reduce bucket size in KiB (several ranks only).")
    var bucketKib = 1024

    @Flag(
        help:
            "Also time every layer's forward and backward pass and list every oneDNN primitive with its implementation (one rank)."
    )
    var layers = false

    @Flag(
        help:
            "Only list the model's oneDNN primitives, their implementations, the instruction set and the map layouts, timing nothing; reference implementations are marked."
    )
    var primitives = false

    @Flag(help: "Print the result as one JSON object.")
    var json = false

    func run() throws {
        if let data {
            try shuffleQuality ? runShuffleQuality(data) : runDataRead(data)
            return
        }
        let isCNN = model != .mlp
        let channels = self.channels ?? (model == .resnet ? "16,32,64" : "32,64,128")
        let batch = self.batch ?? (isCNN ? 128 : 256)
        let classes = self.classes ?? (isCNN ? 10 : 16)
        let widths = (isCNN ? channels : hidden).split(separator: ",").compactMap { Int($0) }
        let exitLayers = (exits ?? (isCNN ? "1,2,3" : "1,3,5")).split(separator: ",").compactMap { Int($0) }
        let imageShape = image.split(separator: ",").compactMap { Int($0) }
        guard !widths.isEmpty, widths.allSatisfy({ $0 >= 1 && $0 <= 1 << 16 }), inputs >= 1, inputs <= 1 << 20,
            classes >= 2,
            exitLayers.first.map({ $0 >= 1 }) == true, zip(exitLayers, exitLayers.dropFirst()).allSatisfy({ $0 < $1 }),
            exitLayers.last == widths.count, batch >= 2, batch <= 1 << 20, steps >= 1, bucketKib >= 1
        else {
            throw ValidationError(
                "needs positive --inputs and --hidden (or --channels) widths, --classes >= 2, increasing 1-based --exits ending at the last block, --batch in [2, 1048576], --steps >= 1 and --bucket-kib >= 1"
            )
        }
        guard
            !isCNN
                || (imageShape.count == 3 && imageShape.allSatisfy { $0 >= 1 } && imageShape[1] >= 1 << widths.count
                    && imageShape[2] >= 1 << widths.count)
        else {
            throw ValidationError("--image needs channels,height,width with height and width at least 2^blocks")
        }
        DNNLRuntime.setThreadCount(threads)
        guard stemChannels >= 1 && stemChannels <= 1 << 16 else {
            throw ValidationError("--stem-channels must be in [1, 65536]")
        }
        let benchModel: BenchmarkModel
        switch model {
        case .resnet:
            benchModel = .resnet(
                ResNetArchitecture(
                    inputShape: imageShape, stemChannels: stemChannels, channels: widths, exitsAfter: exitLayers,
                    classes: classes))
        case .cnn:
            benchModel = .cnn(
                CNNArchitecture(inputShape: imageShape, channels: widths, exitsAfter: exitLayers, classes: classes))
        case .mlp:
            benchModel = .mlp(
                MLPArchitecture(inputFeatures: inputs, hiddenWidths: widths, exitsAfter: exitLayers, classes: classes))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try underMPI { world in
            if primitives {
                let listing = PrimitiveListing(model: benchModel, batch: batch)
                if world.isRoot {
                    print(json ? String(decoding: try encoder.encode(listing), as: UTF8.self) : listing.report)
                }
            } else if compareMethods {
                guard !world.hasOtherRanks else { throw ValidationError("--compare-methods runs on one rank") }
                let result = try MethodCostComparison(model: benchModel, batch: batch, steps: steps).run()
                print(json ? String(decoding: try encoder.encode(result), as: UTF8.self) : result.report)
            } else if !world.hasOtherRanks {
                let result = try TrainingBenchmark(model: benchModel, batch: batch, steps: steps, method: method).run()
                print(json ? String(decoding: try encoder.encode(result), as: UTF8.self) : result.report)
                if layers && !json {
                    print(LayerProfile.measure(benchModel.build(), batch: batch, repeats: max(3, steps / 10)).report)
                    print(PrimitiveListing(model: benchModel, batch: batch).report)
                }
            } else {
                let result = try ScalingBenchmark(
                    model: benchModel, globalBatch: batch, steps: steps, bucketKib: bucketKib
                ).run(world: world)
                if world.isRoot {
                    print(
                        json
                            ? String(decoding: try encoder.encode(result), as: UTF8.self)
                            : "kernels built for: \(KernelTarget.summary); \(DNNLRuntime.summary)\n" + result.report)
                }
            }
        }
    }

    /// `--data --shuffle-quality`: the orders of training measured in this process.
    private func runShuffleQuality(_ path: String) throws {
        let globalBatch = batch ?? 64
        guard globalBatch >= 2 * ranks, ranks >= 1, ranks <= 1024, globalBatch <= 1 << 20 else {
            throw ValidationError("--batch must give each of --ranks (1 to 1024) at least two samples")
        }
        guard (1...100).contains(epochs) else { throw ValidationError("--epochs must be in [1, 100]") }
        let result = try ShuffleQuality(path: path, ranks: ranks, globalBatch: globalBatch, seed: seed, epochs: epochs)
            .run()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(result), as: UTF8.self))
        } else {
            print(result.report)
        }
    }

    /// `--data`: one epoch's reads on every rank, reported by rank 0.
    private func runDataRead(_ path: String) throws {
        let globalBatch = batch ?? 256
        guard globalBatch >= 2, globalBatch <= 1 << 20 else { throw ValidationError("--batch must be in [2, 1048576]") }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try underMPI { world in
            let result = try DataReadBenchmark(
                path: path, globalBatch: globalBatch, seed: seed, cold: cold, shuffle: shuffle
            ).run(world: world)
            if world.isRoot {
                print(json ? String(decoding: try encoder.encode(result), as: UTF8.self) : result.report)
            }
        }
    }
}
