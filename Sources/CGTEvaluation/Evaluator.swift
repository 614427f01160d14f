import CGTData
import CGTModel

/// Early-exit inference over a split, and the BatchNorm re-estimation that precedes it.
public final class Evaluator {
    public let network: EarlyExitNetwork
    public let batchSize: Int
    private let objective: ExitObjective

    public init(network: EarlyExitNetwork, batchSize: Int, classGroups: ClassGroups? = nil) {
        self.network = network
        self.batchSize = batchSize
        objective = ExitObjective(network: network, classGroups: classGroups)
        objective.reserve(maxBatch: batchSize)
        network.reserve(maxBatch: batchSize)
    }

    /// Replaces the BatchNorm running statistics by their average over `batches` of `split`
    /// (positions into it), with dropout off and the weights unchanged.
    ///
    /// With dropout after BatchNorm, the statistics collected in training describe activations
    /// of a network with dropout on (the variance shift of Li et al., 2019); re-estimating
    /// them in inference conditions removes that mismatch. Data-parallel runs pass each rank's
    /// part of every global batch, with the BatchNorm layers' reducers set, so the estimate is
    /// the one a single process makes. `RecalibrationPlan` says which batches.
    public func recalibrateBatchNorm(on split: DatasetSplit, batches: [ArraySlice<Int>]) {
        guard !network.batchNormLayers.isEmpty, let largest = batches.map(\.count).max() else { return }
        network.reserve(maxBatch: largest)
        withBatchBuffers(largest, featureCount: split.featureCount) { x, y, ids in
            for (index, positions) in batches.enumerated() {
                split.gather(positions, features: x, labels: y, sampleIDs: ids)
                network.forward(
                    UnsafeBufferPointer(x), batch: positions.count,
                    context: ForwardContext(mode: .recalibration(batchIndex: index)))
            }
        }
    }

    /// Every exit's prediction and confidence scores for every sample of `split`, in inference mode.
    public func records(_ split: DatasetSplit) -> ExitRecords {
        var records = ExitRecords(exits: network.exitCount, classes: network.classes)
        append(split, to: &records)
        return records
    }

    /// Appends the records of every sample of `split` to `records`, in batches of `batchSize`
    /// from its first sample: a split scored in blocks of whole batches gives the records of
    /// the split scored whole, bit for bit.
    public func append(_ split: DatasetSplit, to records: inout ExitRecords) {
        let all = Array(0..<split.count)
        withBatchBuffers(batchSize, featureCount: split.featureCount) { x, y, ids in
            var start = 0
            while start < split.count {
                let count = min(batchSize, split.count - start)
                split.gather(all[start..<(start + count)], features: x, labels: y, sampleIDs: ids)
                network.forward(UnsafeBufferPointer(x), batch: count, context: ForwardContext(mode: .inference))
                let labels = UnsafeBufferPointer(rebasing: y[0..<count])
                let outputs = objective.predict(network: network, labels: labels, batch: count)
                records.append(outputs, objective: objective, labels: labels, batch: count)
                start += count
            }
        }
    }
}
