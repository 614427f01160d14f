import CGTEvaluation
import CGTKernels
import CGTMPI
import Foundation

extension CheckpointEvaluation {
    /// What rank 0 holds after `run(over:)`: the report as written, and what was evaluated
    /// (its data file closed by then).
    public struct Outcome {
        public let written: Written
        public let loaded: Loaded
    }

    /// Loads the checkpoint on every rank of `world` (a failure on one stops all), evaluates
    /// it sharded over them (under the stall watch of the checkpoint's job), and writes the
    /// report on rank 0, which gets the outcome; the other ranks get nil.
    public func run(over world: Communicator) throws -> Outcome? {
        let loaded = try world.collectively { try load(rank: world.rank, ranks: world.size) }
        defer { try? loaded.reader.close() }
        // At batch 1, a piece every early-exit pass may run (primitives of other sizes are made as met).
        if world.isRoot,
            let warning = PrimitiveImplementation.referenceWarning(
                loaded.network.primitiveImplementations(batch: 1).filter(\.runsInInference))
        {
            FileHandle.standardError.write(Data("cgt: warning: \(warning)\n".utf8))
        }
        let ranks = DataParallelStrategy(communicator: world, gradients: nil, runtime: loaded.stored.job.runtime)
        let report = try evaluate(loaded, on: ranks)
        guard world.isRoot else { return nil }
        return Outcome(written: try write(report, of: loaded), loaded: loaded)
    }
}
