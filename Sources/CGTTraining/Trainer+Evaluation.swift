import CGTData
import CGTEvaluation
import CGTFiles
import CGTJob
import CGTModel

extension Trainer {
    /// Early-exit routing statistics on the test split at `eval.tau`, sharded over ranks.
    public func testStatistics() throws -> RoutingStatistics {
        try routingStatistics(test: true, validation: false).test!
    }

    /// Early-exit routing statistics at `eval.tau` on the test split and on the validation
    /// split (nil when not asked for or when the data has none), summed over ranks.
    ///
    /// BatchNorm is re-estimated (if the job asks) once for both, over the seeded subset of
    /// the training split `RecalibrationPlan` draws (each rank reading about 1/R of it), with
    /// statistics summed over ranks, so any number of ranks gives the report of one. The
    /// re-estimated statistics are kept for the checkpoint of this epoch
    /// (`CheckpointConnector.evaluated`); the network goes on with its own, so when and how
    /// often a run is evaluated never changes its training. A share larger than one evaluation
    /// block is read again, block by block (`SplitShare`).
    func routingStatistics(test: Bool, validation: Bool) throws -> (
        test: RoutingStatistics?, validation: RoutingStatistics?
    ) {
        let shards = [test ? testShard : nil, validation ? validationShard : nil]
        let largest = shards.compactMap { $0?.count }.max() ?? 0
        let evaluation = DistributedEvaluation(
            network: network, ranks: strategy, batchSize: max(1, min(job.eval.batchSize, largest)),
            classGroups: classGroups)
        let saved = network.store.snapshot()
        defer {
            network.store.restore(saved)
            strategy.synchronizeBatchNorm(of: network, job.training.syncBatchnorm)
        }
        if job.eval.bnRecalibration {
            let share = try together {
                try job.recalibrationShare(reader: reader, rank: strategy.rank, ranks: strategy.ranks)
            }
            SignalDrill.reached(.recalibration)
            evaluation.recalibrateBatchNorm(on: share)
            if !network.store.bufferSlots.isEmpty {
                checkpoints.evaluated(buffers: Array(network.store.buffers), epoch: epoch)
            }
        }
        SignalDrill.reached(.evaluation)
        let results = try shards.map { split in try split.map { try evaluation.statistics($0, tau: job.eval.tau) } }
        return (results[0], results[1])
    }
}
