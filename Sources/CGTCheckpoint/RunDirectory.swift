import CGTFiles
import CGTJob
import Foundation

/// The folder a run writes, and the one place that names its files: nothing else in cgt
/// spells a path inside a run.
///
/// ```
/// <run>/job.yaml              the resolved job
/// <run>/metrics.jsonl         one JSON object per epoch
/// <run>/checkpoints/epoch-0010.h5, last.h5
/// <run>/checkpoints/interrupted.h5   where a stop signal left an epoch
/// <run>/eval.json             routing statistics of the final model on the test split
/// <run>/validation.json       the same on the validation split, when the data has one
/// <run>/best.json, checkpoints/best.h5   the best epoch on the validation split (training.keep_best)
/// <run>/tensorboard/          event files (logging.tensorboard)
/// <run>/eval/                 cgt eval's report of a checkpoint (eval.json, CSV files, model.h5)
/// <run>/report.html, figures/ cgt report's page and its figures
/// <run>/status.json           a grid trial's status (grids only)
/// <run>/.lock                 flock'ed while a training or eval --save-policy writes the folder
/// ```
public struct RunDirectory: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    /// The run folder a checkpoint file belongs to: the folder above its `checkpoints/`, else
    /// the file's own folder (absolute).
    public init(containing checkpoint: String) {
        let url = URL(fileURLWithPath: checkpoint).deletingLastPathComponent()
        path = (url.lastPathComponent == Self.checkpointsFolderName ? url.deletingLastPathComponent() : url).path
    }

    public var jobFile: String { "\(path)/job.yaml" }
    public var metricsFile: String { "\(path)/metrics.jsonl" }
    public var checkpointFolder: String { "\(path)/\(Self.checkpointsFolderName)" }
    public static let checkpointsFolderName = "checkpoints"
    public var lastCheckpoint: String { "\(checkpointFolder)/last.h5" }
    /// TensorBoard event files (`logging.tensorboard`).
    public var tensorBoardFolder: String { "\(path)/tensorboard" }
    /// The checkpoint a stop signal wrote mid-epoch; removed once a later epoch's is written.
    public var interruptedCheckpoint: String { "\(checkpointFolder)/interrupted.h5" }
    public var evaluationFile: String { "\(path)/eval.json" }
    /// Statistics on the validation split: what grids select trials by, so the test split
    /// only reports.
    public var validationFile: String { "\(path)/validation.json" }
    /// The checkpoint that scored best on the validation split (`training.keep_best`), and
    /// which epoch and score that was.
    public var bestCheckpoint: String { "\(path)/\(Self.bestCheckpointName)" }
    /// `best.h5` relative to the run folder, as the run's page names it.
    public static let bestCheckpointName = "\(checkpointsFolderName)/best.h5"
    public var bestFile: String { "\(path)/best.json" }
    /// `cgt eval`'s report of a checkpoint of the run, unless told another folder.
    public var evaluation: EvaluationFolder { EvaluationFolder(path: "\(path)/eval") }
    /// `cgt report`'s page and the figures it shows.
    public var reportFile: String { "\(path)/\(Self.reportFileName)" }
    /// The page's name, as a grid's page links a trial's.
    public static let reportFileName = "report.html"
    public var figuresFolder: String { "\(path)/\(Self.figuresFolderName)" }
    /// The figures' folder as `report.html` links it.
    public static let figuresFolderName = "figures"
    /// A grid trial's status (`TrialStatus`), in a run folder of a grid.
    public var trialStatusFile: String { "\(path)/status.json" }
    public func checkpoint(epoch: Int) -> String { "\(checkpointFolder)/epoch-\(String(format: "%04d", epoch)).h5" }

    /// Whether the folder holds any checkpoint (`last.h5` or an epoch file).
    public var hasCheckpoint: Bool {
        FileManager.default.fileExists(atPath: lastCheckpoint) || !epochCheckpoints.isEmpty
            || FileManager.default.fileExists(atPath: interruptedCheckpoint)
    }

    /// The epoch files in `checkpoints/`, oldest first.
    public var epochCheckpoints: [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: checkpointFolder)) ?? []
        // By epoch number: %04d grows past four digits after epoch 9999.
        let numbered = names.compactMap { name -> (Int, String)? in
            guard name.hasPrefix("epoch-") && name.hasSuffix(".h5"), let epoch = Int(name.dropFirst(6).dropLast(3))
            else {
                return nil
            }
            return (epoch, name)
        }
        return numbered.sorted { $0.0 < $1.0 }.map { "\(checkpointFolder)/\($0.1)" }
    }

    /// The checkpoint `--resume` continues from: the newest epoch file that opens as a
    /// checkpoint (a kill between an epoch file's rename and the link leaves `last.h5` behind
    /// it, or missing), else `last.h5`.
    public var newestCheckpoint: String? {
        let whole =
            epochCheckpoints.reversed().first(where: { Checkpoint.isCheckpoint(at: $0) })
            ?? (FileManager.default.fileExists(atPath: lastCheckpoint) ? lastCheckpoint : nil)
        // A stop mid-epoch e+1 is newer than epoch file e (and older than e+1, which removes it).
        if let stopped = Checkpoint.completedEpochs(at: interruptedCheckpoint),
            stopped >= (whole.flatMap(Checkpoint.completedEpochs(at:)) ?? 0)
        {
            return interruptedCheckpoint
        }
        return whole
    }

    public func create() throws {
        try OutputFolder.create(path)
        try OutputFolder.create(checkpointFolder)
    }

    /// A run's first writes, on rank 0: the folders, the lock (`lock`), leftovers of killed
    /// writers removed, `jobYAML` as job.yaml, and metrics.jsonl cut after `epoch` (the epoch
    /// resumed from; 0 for a fresh run). Returns the lock, held for the run.
    ///
    /// A failure (a full disk, a folder made read-only) names its file, and what this call
    /// made is removed again, and only that: a folder this run made is removed whole (nobody
    /// else writes a folder it holds the lock of), one that was there keeps everything but the
    /// files this call added. So a run refused at its start leaves no half-made run folder.
    public func begin(jobYAML: String, keepingMetricsUpTo epoch: Int) throws -> RunLock {
        func exists(_ path: String) -> Bool {
            var status = stat()
            return lstat(path, &status) == 0
        }
        // The folders mkdir -p is about to make, innermost first.
        var madeFolders: [String] = []
        var folder = URL(fileURLWithPath: path).standardizedFileURL.path
        while folder != "/" && !exists(folder) {
            madeFolders.append(folder)
            folder = (folder as NSString).deletingLastPathComponent
        }
        let made = (
            checkpoints: !exists(checkpointFolder), lock: !exists(lockFile), job: !exists(jobFile)
        )
        /// Removes what this call made; with the lock held, a folder it made goes whole.
        func undo(locked: Bool) {
            if locked, !madeFolders.isEmpty {
                try? FileManager.default.removeItem(atPath: path)
            } else {
                if locked && made.job { unlink(jobFile) }
                if made.lock { unlink(lockFile) }
                if made.checkpoints { rmdir(checkpointFolder) }
            }
            // rmdir leaves a folder someone else has put a file in since.
            for folder in madeFolders { rmdir(folder) }
        }
        let lock: RunLock
        do {
            try create()
            lock = try self.lock()
        } catch let error as CheckpointError {
            // In use by another process: the folder is that one's.
            throw error
        } catch {
            undo(locked: false)
            throw error
        }
        do {
            AtomicFile.removeLeftovers(in: path)
            AtomicFile.removeLeftovers(in: checkpointFolder)
            try AtomicFile.write(Data(jobYAML.utf8), to: jobFile)
            try EpochLog<EpochNumber>(path: metricsFile).truncate(afterEpoch: epoch)
        } catch {
            undo(locked: true)
            throw error
        }
        return lock
    }

    /// `flock`ed while a training or `cgt eval --save-policy` writes the folder.
    var lockFile: String { "\(path)/.lock" }

    /// Takes the folder for this process: a second trainer, or `cgt eval --save-policy`, on a
    /// folder in use is refused instead of interleaving files. Held until the lock is released.
    public func lock() throws -> RunLock { try RunLock(folder: path) }
}

/// The one field of a metrics line the run folder reads.
private struct EpochNumber: EpochRecord {
    var epoch: Int
}

/// An exclusive `flock` on `<run>/.lock`, released when this is.
public final class RunLock {
    private let descriptor: Int32

    init(folder: String) throws {
        let path = RunDirectory(path: folder).lockFile
        descriptor = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw FileError(operation: "open", path: path, reason: String(cString: strerror(errno)))
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            close(descriptor)
            // ENOLCK, ENOSYS: a file system without locks (NFS nolock, Lustre without flock).
            guard code == EWOULDBLOCK else {
                throw FileError(
                    operation: "flock", path: path,
                    reason:
                        "\(String(cString: strerror(code))) (this file system cannot lock: mount it with locking, or put runs elsewhere)"
                )
            }
            throw CheckpointError(
                file: folder,
                "in use by another cgt process (a training or cgt eval --save-policy); wait for it, or choose another --out"
            )
        }
    }

    deinit { close(descriptor) }
}
