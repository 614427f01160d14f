import CGTModel

/// Everything L2W's meta step carries from one training step to the next, so an l2w run
/// resumes bitwise: the weight prediction network with its Adam state, how many steps count
/// toward the meta interval, and the meta batch (the previous step's batch of every rank).
///
/// Stored under `/l2w` of a checkpoint (`hdf5_data/README.md`, "Checkpoints").
public struct L2WState: Equatable, Sendable {
    /// The weight network's parameters by key path ("l2w.0.linear.weight").
    public var parameters: [String: StoredTensor]
    /// Its optimizer's state buffers by state name, then key path.
    public var optimizerState: [String: [String: StoredTensor]]
    public var optimizerStepCount: Int
    /// Training steps taken since the run began, the count the meta interval divides.
    public var steps: Int
    /// The next meta step's batch; nil before the first step.
    public var metaBatch: MetaBatch?

    public init(
        parameters: [String: StoredTensor], optimizerState: [String: [String: StoredTensor]], optimizerStepCount: Int,
        steps: Int, metaBatch: MetaBatch?
    ) {
        self.parameters = parameters
        self.optimizerState = optimizerState
        self.optimizerStepCount = optimizerStepCount
        self.steps = steps
        self.metaBatch = metaBatch
    }

    /// The state of `weights` and its optimizer.
    public init(weights: LearnedExitWeights, steps: Int, metaBatch: MetaBatch?) {
        self.init(
            parameters: StoredTensor.parameters(of: weights.store),
            optimizerState: StoredTensor.optimizerState(of: weights.optimizer, along: weights.store),
            optimizerStepCount: weights.optimizer.stepCount, steps: steps, metaBatch: metaBatch)
    }

    /// Copies the weight network and its optimizer into `weights`; `source` names the file in errors.
    public func restore(into weights: LearnedExitWeights, source: String) throws {
        let group = CheckpointLayout.l2w
        try StoredTensor.restoreParameters(
            parameters, into: weights.store, group: "\(group)/\(CheckpointLayout.model)", source: source)
        try StoredTensor.restoreOptimizer(
            optimizerState, stepCount: optimizerStepCount, into: weights.optimizer, along: weights.store,
            group: "\(group)/\(CheckpointLayout.optimizer)", source: source)
    }
}

/// The batch L2W's next meta step measures its meta loss on: every rank's part of the previous
/// training step, rank by rank, as the network saw it (augmented).
public struct MetaBatch: Equatable, Sendable {
    /// One row of the network's input per label, rank by rank.
    public var features: [Float]
    public var labels: [Int32]
    public var sampleIDs: [Int64]
    /// Rows of each rank, in rank order.
    public var rankRows: [Int]
    /// The step's samples over all ranks (the meta loss's divisor).
    public var globalCount: Int
    /// The step's dropout key.
    public var randomKey: UInt64

    public init(
        features: [Float], labels: [Int32], sampleIDs: [Int64], rankRows: [Int], globalCount: Int, randomKey: UInt64
    ) {
        self.features = features
        self.labels = labels
        self.sampleIDs = sampleIDs
        self.rankRows = rankRows
        self.globalCount = globalCount
        self.randomKey = randomKey
    }

    /// The rows rank `rank` of `ranks` takes: its own when the run has as many ranks as the one
    /// that stored the batch (which resumes bitwise), else an even share.
    public func rows(ofRank rank: Int, of ranks: Int) -> Range<Int> {
        if ranks == rankRows.count {
            let start = rankRows.prefix(rank).reduce(0, +)
            return start..<(start + rankRows[rank])
        }
        let total = labels.count
        return (total * rank / ranks)..<(total * (rank + 1) / ranks)
    }
}
