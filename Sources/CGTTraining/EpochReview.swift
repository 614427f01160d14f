import CGTEvaluation

/// Which epochs a training run is reviewed after, and the review: given the epoch and the
/// scores at `eval.tau` on the validation split (on the test split, with `false`, when the data
/// has none), whether training goes on. Asked on rank 0 only; every rank follows its answer.
public struct EpochReview {
    public var epochs: Set<Int>
    public var decide: (_ epoch: Int, _ scores: RoutingStatistics, _ onValidation: Bool) throws -> Bool

    public init(
        epochs: Set<Int>,
        decide: @escaping (_ epoch: Int, _ scores: RoutingStatistics, _ onValidation: Bool) throws -> Bool
    ) {
        self.epochs = epochs
        self.decide = decide
    }
}

/// Training ended before its last epoch because its `EpochReview` said so, on every rank at
/// the same epoch, with that epoch's checkpoint written.
public struct TrainingStoppedEarly: Error, CustomStringConvertible, Sendable {
    public let epoch: Int
    public let checkpoint: String

    public var description: String { "stopped early after epoch \(epoch); its checkpoint is \(checkpoint)" }
}
