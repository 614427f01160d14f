import CGTJob
import Foundation

extension RunDirectory {
    /// The job `--resume` continues: the run's own `job.yaml` with this command's `--set`,
    /// `--data` and `--seed`, not the job file given again, so a setting the run started with
    /// (`--set logging.tensorboard=true`) stays unless it is set anew. Returns one line per
    /// key the command changes, to be said.
    ///
    /// The given job file must describe the same run; `--set` may change only what can change
    /// mid-run (`Job.withResumableSettings`). A run folder without `job.yaml` (written by an
    /// older cgt) resumes the given job, as before.
    public func resumedJob(
        given: Job, file: String, overrides: JobOverrides
    ) throws -> (job: Job, changes: [String]) {
        guard FileManager.default.fileExists(atPath: jobFile) else { return (given, []) }
        let own = try JobOverrides(dataPath: overrides.dataPath).load(jobFile)
        let continued = try overrides.load(jobFile)
        let changes = try JobLoader.differences(from: own, to: continued)
        guard own.withResumableSettings(of: continued) == continued else {
            let fixed = changes.filter { change in !Job.resumableKeys.contains { change.hasPrefix($0) } }
            throw JobError(
                source: "--set", key: "",
                "--resume may change only \(Job.resumableKeysInWords) of a run, not \(fixed.first ?? changes.first ?? "")"
            )
        }
        // The same overrides went into both, so what differs comes from the files.
        var comparable = given.withResumableSettings(of: continued)
        comparable.data.path = continued.data.path
        guard comparable == continued else {
            let differences = (try? JobLoader.differences(from: continued, to: comparable)) ?? []
            throw JobError(
                source: file, key: "",
                "--resume: describes another run than \(jobFile) (\(differences.prefix(3).joined(separator: "; "))\(differences.count > 3 ? "; ..." : "")); a run resumes its own job: change \(Job.resumableKeysInWords) with --set"
            )
        }
        // The job file's own epochs, runtime or logging do not apply: say so where they differ.
        let ignored = try JobLoader.differences(from: continued, to: given).compactMap { difference -> String? in
            guard Job.resumableKeys.contains(where: { difference.hasPrefix($0) }),
                let colon = difference.range(of: ": "), let arrow = difference.range(of: " -> ")
            else { return nil }
            let key = difference[..<colon.lowerBound]
            let (kept, given) = (difference[colon.upperBound..<arrow.lowerBound], difference[arrow.upperBound...])
            return
                "note: \(file) says \(key): \(given); the run keeps its own \(kept) (--set \(key)=\(given) changes it)"
        }
        return (continued, changes.map { "resume: \($0)" } + ignored)
    }

}
