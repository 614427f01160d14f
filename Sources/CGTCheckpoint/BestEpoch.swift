import CGTFiles
import CGTJob
import Foundation

/// What `best.json` holds: the epoch kept as `checkpoints/best.h5` (`training.keep_best`) and
/// the score on the validation split that chose it.
public struct BestEpoch: Codable, Equatable, Sendable {
    public var metric: SelectionMetric
    public var value: Double
    public var epoch: Int

    public init(metric: SelectionMetric, value: Double, epoch: Int) {
        self.metric = metric
        self.value = value
        self.epoch = epoch
    }
}

extension RunDirectory {
    /// The run's `best.json`, or nil when there is none (or it is not one cgt wrote).
    public func bestEpoch() -> BestEpoch? {
        FileManager.default.contents(atPath: bestFile).flatMap { try? JSONDecoder().decode(BestEpoch.self, from: $0) }
    }

    /// Replaces `best.json` whole.
    public func writeBestEpoch(_ record: BestEpoch) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(record), to: bestFile)
    }
}
