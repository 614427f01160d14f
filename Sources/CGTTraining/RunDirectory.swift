import CGTJob
import Foundation

/// The folder a run writes: the resolved job, metrics, checkpoints and evaluation.
///
/// ```
/// <run>/job.yaml              the resolved job
/// <run>/metrics.jsonl         one JSON object per epoch
/// <run>/checkpoints/epoch-0010.h5, last.h5
/// <run>/eval.json             routing statistics of the final model on the test split
/// <run>/validation.json       the same on the validation split, when the data has one
/// <run>/best.json, checkpoints/best.h5   the best epoch on the validation split (training.keep_best)
/// ```
public struct RunDirectory: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    public var jobFile: String { "\(path)/job.yaml" }
    public var metricsFile: String { "\(path)/metrics.jsonl" }
    public var checkpointFolder: String { "\(path)/checkpoints" }
    public var lastCheckpoint: String { "\(checkpointFolder)/last.h5" }
    public var evaluationFile: String { "\(path)/eval.json" }
    /// Statistics on the validation split: what grids select trials by, so the test split
    /// only reports.
    public var validationFile: String { "\(path)/validation.json" }
    /// The checkpoint that scored best on the validation split (`training.keep_best`), and
    /// which epoch and score that was.
    public var bestCheckpoint: String { "\(checkpointFolder)/best.h5" }
    public var bestFile: String { "\(path)/best.json" }
    public func checkpoint(epoch: Int) -> String { "\(checkpointFolder)/epoch-\(String(format: "%04d", epoch)).h5" }

    public var hasCheckpoint: Bool { FileManager.default.fileExists(atPath: lastCheckpoint) }

    public func create() throws {
        try FileManager.default.createDirectory(atPath: checkpointFolder, withIntermediateDirectories: true)
    }
}
