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

/// Writes `data` to `path` so that readers see the old file or the whole new one, never a part.
public func writeFileAtomically(_ data: Data, to path: String) throws {
    let temporary = "\(path).tmp-\(getpid())"
    guard FileManager.default.createFile(atPath: temporary, contents: nil) else {
        throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: temporary])
    }
    do {
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: temporary))
        try handle.write(contentsOf: data)
        try handle.synchronize()
        try handle.close()
        guard rename(temporary, path) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    } catch {
        unlink(temporary)
        throw error
    }
    synchronizeFolder(of: path)
}

/// Flushes the folder holding `path`, so that a rename into it survives a crash.
func synchronizeFolder(of path: String) {
    let parent = (path as NSString).deletingLastPathComponent
    let folder = open(parent.isEmpty ? "." : parent, O_RDONLY | O_DIRECTORY)
    if folder >= 0 {
        fsync(folder)
        close(folder)
    }
}

/// Makes `path` name the same file as `existing` (a hard link), replacing it atomically.
func linkAtomically(_ existing: String, to path: String) throws {
    let temporary = "\(path).tmp-\(getpid())"
    unlink(temporary)
    guard link(existing, temporary) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    guard rename(temporary, path) == 0 else {
        unlink(temporary)
        throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
    }
    synchronizeFolder(of: path)
}
