import CGTData
import CGTJob
import CGTKernels

/// The samples each rank trains on, step by step, as the training loop takes them, with the
/// loop's own shard: what `cgt bench --shuffle-quality` measures a shuffle on.
public enum TrainingOrder {
    /// One rank's local batch of one step: the samples' ids (rows of the split) and labels.
    public struct LocalBatch: Sendable {
        public var sampleIDs: [Int64]
        public var labels: [Int32]
    }

    /// `[rank][step]` of `epoch`, each rank's piece held whole (`bufferRows` nil) or streamed
    /// through a shuffle buffer of `bufferRows`, read from `reader` one rank after another.
    public static func localBatches(
        reader: DatasetReader, ranks: Int, globalBatch: Int, seed: UInt64, mode: ShuffleMode, bufferRows: Int?,
        epoch: Int
    ) throws -> [[LocalBatch]] {
        try (0..<ranks).map { rank in
            let shard = try TrainingShard(
                reader: reader, rank: rank, ranks: ranks, seed: seed, globalBatch: globalBatch, mode: mode)
            defer { shard.readThread.stop() }
            shard.adopt(bufferRows.map { .streamed(bufferRows: $0) } ?? .held, resumed: nil)
            try shard.prepare(epoch: epoch)
            return try withBatchBuffers(shard.maxLocalBatch, featureCount: reader.featureCount) { x, y, ids in
                try (0..<shard.stepsPerEpoch).map { step in
                    let count = try shard.gather(step: step, features: x, labels: y, sampleIDs: ids)
                    return LocalBatch(sampleIDs: Array(ids[0..<count]), labels: Array(y[0..<count]))
                }
            }
        }
    }

    /// The rows of rank 0's piece of an epoch in `mode`: what a buffer fraction is a fraction of.
    public static func pieceRows(reader: DatasetReader, ranks: Int, globalBatch: Int, mode: ShuffleMode) throws -> Int {
        let shard = try TrainingShard(
            reader: reader, rank: 0, ranks: ranks, seed: 0, globalBatch: globalBatch, mode: mode)
        defer { shard.readThread.stop() }
        return shard.pieceRows
    }
}
