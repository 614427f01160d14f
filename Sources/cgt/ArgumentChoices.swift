import ArgumentParser
import CGTData
import CGTEvaluation
import CGTExperiments
import CGTJob
import CGTModel

// Closed sets the command line takes by name; ArgumentParser lists the names in --help and
// rejects any other with them.
extension SelectionMetric: ExpressibleByArgument {}
extension ExitCriterion: ExpressibleByArgument {}
extension ExitFallback: ExpressibleByArgument {}
extension TrialSchedule: ExpressibleByArgument {}
extension FeatureStorage: ExpressibleByArgument {}
extension DatasetCompression: ExpressibleByArgument {}
extension ShuffleMode: ExpressibleByArgument {}
extension BenchmarkMethod: ExpressibleByArgument {}
extension ModelKind: ExpressibleByArgument {}

/// `--data`, shared by the commands that read a job's dataset: another file in the same layout.
struct DatasetOverride: ParsableArguments {
    @Option(help: "The dataset file, instead of the job's data.path (for eval: the checkpoint's job).")
    var data: String?

    /// The file to read: the override, or the job's own.
    func path(for job: Job) -> String { data ?? job.data.path }
}

/// `--set`, `--data` and `--seed`: what `cgt train` changes in its job and `cgt grid` in every
/// trial's (after the grid's own parameters), with the same keys and errors.
struct JobOptions: ParsableArguments {
    @Option(help: "The dataset file, instead of the job's data.path.")
    var data: String?

    @Option(
        name: .customLong("set"),
        help: ArgumentHelp("Override a job key, e.g. --set optimizer.lr=0.01 (repeatable).", valueName: "key=value"))
    var assignments: [String] = []

    @Option(help: "Override training.seed.")
    var seed: UInt64?

    var overrides: JobOverrides { JobOverrides(assignments: assignments, dataPath: data, seed: seed) }
}
