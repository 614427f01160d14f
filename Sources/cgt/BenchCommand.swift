import ArgumentParser
import CGTKernels
import CGTModel
import CGTMPI
import CGTTraining
import Foundation

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure training throughput of the paper's MLP against a bare cblas_sgemm loop of the same matrix products.",
        discussion: """
            Under mpirun with several ranks, measures data-parallel scaling instead: 1 rank vs all ranks at the
            same global batch (--batch), with and without all-reduce overlap, and a bare MPI_Allreduce of the gradients.
            """)

    @Option(help: "Samples per step.")
    var batch = 256

    @Option(help: "Timed steps (after as many warm-up steps).")
    var steps = 300

    @Option(help: "OpenBLAS threads.")
    var threads = 1

    @Option(help: "Input features, hidden widths and classes of the MLP.")
    var inputs = 200
    @Option(help: "Hidden widths, comma-separated.")
    var hidden = "256,256,256,256,256"
    @Option(help: "1-based hidden layers followed by an exit, comma-separated.")
    var exits = "1,3,5"
    @Option(help: "Number of classes.")
    var classes = 16

    @Option(help: "Gradient all-reduce bucket size in KiB (several ranks only).")
    var bucketKib = 1024

    @Flag(help: "Print the result as one JSON object.")
    var json = false

    func run() throws {
        let widths = hidden.split(separator: ",").compactMap { Int($0) }
        let exitLayers = exits.split(separator: ",").compactMap { Int($0) }
        guard !widths.isEmpty, widths.allSatisfy({ $0 >= 1 && $0 <= 1 << 16 }), inputs >= 1, inputs <= 1 << 20, classes >= 2,
              exitLayers.first.map({ $0 >= 1 }) == true, zip(exitLayers, exitLayers.dropFirst()).allSatisfy({ $0 < $1 }),
              exitLayers.last == widths.count, batch >= 2, batch <= 1 << 20, steps >= 1, bucketKib >= 1 else {
            throw ValidationError("needs positive --inputs and --hidden widths, --classes >= 2, increasing 1-based --exits ending at the last layer, --batch in [2, 1048576], --steps >= 1 and --bucket-kib >= 1")
        }
        MatrixMultiply.setThreadCount(threads)
        let architecture = MLPArchitecture(inputFeatures: inputs, hiddenWidths: widths, exitsAfter: exitLayers, classes: classes)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try MPIEnvironment.run(report: { _ = reportFailure($0) }) { mpi in
            let world = mpi.world
            if world.size == 1 {
                let result = try TrainingBenchmark(architecture: architecture, batch: batch, steps: steps).run()
                print(json ? String(decoding: try encoder.encode(result), as: UTF8.self) : result.report)
            } else {
                let result = try ScalingBenchmark(architecture: architecture, globalBatch: batch, steps: steps, bucketKib: bucketKib).run(world: world)
                if world.isRoot {
                    print(json ? String(decoding: try encoder.encode(result), as: UTF8.self) : "kernels built for: \(KernelTarget.summary)\n" + result.report)
                }
            }
        }
    }
}
