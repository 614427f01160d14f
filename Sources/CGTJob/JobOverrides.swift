import Foundation

/// What a command line changes in a job before it runs (`cgt train`, and every trial of
/// `cgt grid`): `--set` assignments, then `--data` and `--seed` as plain values (a path is
/// never read as YAML), and the data path made absolute.
public struct JobOverrides: Sendable {
    /// `--set key=value`, in order.
    public var assignments: [String]
    /// `--data`: the dataset file instead of the job's `data.path`.
    public var dataPath: String?
    /// `--seed`: `training.seed`.
    public var seed: UInt64?

    public init(assignments: [String] = [], dataPath: String? = nil, seed: UInt64? = nil) {
        self.assignments = assignments
        self.dataPath = dataPath
        self.seed = seed
    }

    /// Sets the plain values and resolves `data.path` against the working directory, so the
    /// stored job names its data wherever it is read from (`cgt eval` in another folder).
    public func setValues(of job: inout Job) {
        if let dataPath { job.data.path = dataPath }
        if let seed { job.training.seed = seed }
        job.data.path = Self.resolved(job.data.path)
    }

    /// `path` as an absolute path without `.` and `..` (symlinks kept: the name a user gave).
    public static func resolved(_ path: String) -> String {
        guard !path.isEmpty else { return path }
        return URL(fileURLWithPath: path).standardizedFileURL.path
    }

    /// The options as a command line would give them ("--set k=v", "--data P", "--seed S").
    public var description: [String] {
        assignments.map { "--set \($0)" } + (dataPath.map { ["--data \(Self.resolved($0))"] } ?? [])
            + (seed.map { ["--seed \($0)"] } ?? [])
    }

    /// The job file at `path` with these overrides applied.
    public func load(_ path: String) throws -> Job {
        var job = try JobLoader.load(path: path, overrides: assignments)
        setValues(of: &job)
        return job
    }
}

extension Job {
    /// This job with what may change when a run resumes taken from `other`: `training.epochs`
    /// (train longer), `runtime` (limits of this allocation), `logging` and
    /// `training.shuffle_buffer` (the memory of this allocation). Equal to `other`
    /// exactly when both describe the same run.
    public func withResumableSettings(of other: Job) -> Job {
        // (`resumableKeys` names the same keys.)
        var job = self
        job.training.epochs = other.training.epochs
        // Memory, not method: a resumed epoch replays the buffer it was stopped with.
        job.training.shuffleBuffer = other.training.shuffleBuffer
        job.runtime = other.runtime
        job.logging = other.logging
        return job
    }

    /// The keys `withResumableSettings` takes, as prefixes of `JobLoader.differences` lines.
    public static let resumableKeys = ["training.epochs:", "training.shuffle_buffer:", "runtime.", "logging."]

    /// Those keys in words, for messages.
    public static let resumableKeysInWords = "training.epochs, training.shuffle_buffer, runtime and logging"
}
