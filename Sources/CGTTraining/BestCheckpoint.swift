import CGTEvaluation
import Foundation

/// Keeps `checkpoints/best.h5` at the epoch that scored best on the validation split
/// (`training.keep_best`), with `best.json` saying which epoch and score: the model to report
/// without having looked at the test split. Rank 0 only.
struct BestCheckpoint {
    /// What `best.json` holds.
    struct Record: Codable, Equatable {
        var metric: String
        var value: Double
        var epoch: Int
    }

    let metric: String?
    let run: RunDirectory
    private(set) var record: Record?

    /// A resumed run continues from the record it left; a fresh one ignores any old file.
    init(metric: String?, run: RunDirectory, resumed: Bool) {
        self.metric = metric
        self.run = run
        if resumed, let metric, let data = FileManager.default.contents(atPath: run.bestFile),
           let old = try? JSONDecoder().decode(Record.self, from: data), old.metric == metric {
            record = old
        }
    }

    /// Writes the checkpoint (through `write`) and the record when `statistics` beat the best so far.
    mutating func offer(_ statistics: RoutingStatistics, epoch: Int, write: (String) throws -> Void) throws {
        guard let metric else { return }
        let value = GridSummary.Scores(statistics).value(metric)
        if let record, !(GridFile.lowerIsBetter(metric) ? value < record.value : value > record.value) { return }
        try write(run.bestCheckpoint)
        let next = Record(metric: metric, value: value, epoch: epoch)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try writeFileAtomically(try encoder.encode(next), to: run.bestFile)
        record = next
    }
}
