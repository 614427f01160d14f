import CGTCheckpoint
import CGTEvaluation
import CGTJob

/// Keeps `checkpoints/best.h5` at the epoch that scored best on the validation split
/// (`training.keep_best`), with `best.json` saying which epoch and score: the model to report
/// without having looked at the test split. Rank 0 only.
struct BestCheckpoint {
    let metric: SelectionMetric?
    let run: RunDirectory
    private(set) var record: BestEpoch?

    /// A resumed run continues from the record it left; a fresh one ignores any old file.
    init(metric: SelectionMetric?, run: RunDirectory, resumed: Bool) {
        self.metric = metric
        self.run = run
        if resumed, let metric, let old = run.bestEpoch(), old.metric == metric { record = old }
    }

    /// Writes the checkpoint (through `write`) and the record when `statistics` beat the best so far.
    mutating func offer(_ statistics: RoutingStatistics, epoch: Int, write: (String) throws -> Void) throws {
        guard let metric else { return }
        let value = metric.value(of: statistics.scores)
        if let record, !metric.isBetter(value, than: record.value) { return }
        try write(run.bestCheckpoint)
        let next = BestEpoch(metric: metric, value: value, epoch: epoch)
        try run.writeBestEpoch(next)
        record = next
    }
}
