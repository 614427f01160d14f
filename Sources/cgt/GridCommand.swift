import ArgumentParser
import CGTExperiments
import CGTJob
import CGTMPI
import CGTTraining
import Foundation

/// `cgt grid`: a hyperparameter grid in one MPI job.
struct GridCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grid",
        abstract:
            "Run the trials of a grid file in one MPI job, groups of ranks training trials side by side (README.md, 'Grids').",
        discussion: """
            mpirun -np 8 cgt grid GRID.yaml --ranks-per-trial 2 --out runs/grid1     # 4 trials at a time
            mpirun -np 8 cgt grid GRID.yaml --ranks-per-trial 2 --out runs/grid1 --resume
            cgt grid --summary runs/grid1                                            # leaderboard, Pareto front
            cgt grid GRID.yaml --list                                                # the trials, checked
            """)

    @Argument(help: "The grid file (YAML).")
    var grid: String?

    @Flag(help: "Print the trials and their --set overrides; train nothing.")
    var list = false

    @Option(
        help:
            "The grid folder: one run folder per trial, grid.json, leaderboard.*, report.html (default: runs/<grid file name>)."
    )
    var out: String?

    @OptionGroup var options: JobOptions

    @Option(help: "Ranks that train each trial together (must divide the number of ranks).")
    var ranksPerTrial = 1

    @Option(
        help: "queue: each group takes the next trial when done (no idle ranks); static: trial i to group i mod groups."
    )
    var schedule = TrialSchedule.queue

    @Flag(help: "Continue a stopped grid: finished trials are skipped, unfinished ones resume from their checkpoints.")
    var resume = false

    @Option(help: "Summarise the grid folder given here (leaderboard and Pareto front) and train nothing.")
    var summary: String?

    @Option(
        help:
            "Sort the leaderboard by macro_f1, accuracy, relative_cost, macro_precision or macro_recall (default: the grid's metric)."
    )
    var metric: SelectionMetric?

    func validate() throws {
        if summary == nil && grid == nil { throw ValidationError("give a grid file, or --summary with a grid folder") }
        if summary != nil && (grid != nil || list) { throw ValidationError("--summary takes a grid folder alone") }
        if ranksPerTrial < 1 { throw ValidationError("--ranks-per-trial must be at least 1") }
    }

    func run() throws {
        if let summary {
            try reportingFailures {
                let result = try GridSummary.load(folder: summary, metric: metric)
                try result.write()
                print("sorted by \(result.ranking)")
                if let savings = result.savings { print(savings) }
                print(result.markdown)
                print("wrote \(summary)/leaderboard.{csv,json,md}, pareto.svg and report.html")
            }
            return
        }
        var loaded: GridFile?
        try reportingFailures { loaded = try GridFile.load(path: grid!) }
        guard let file = loaded else { return }
        if list {
            try reportingFailures {
                let trials = try file.jobs(commandLine: options.overrides)
                print("# \(trials.count) trials, \(file.search) search, sorted by \(file.metric); base: \(file.base)")
                if let halving = file.halving {
                    let epochs = Set(trials.map(\.1.training.epochs)).sorted()
                    let rungs = epochs.map { "\(halving.rungs(forEpochs: $0)) of \($0) epochs" }
                    print("# successive halving: eta \(halving.eta), rungs at \(rungs.joined(separator: "; "))")
                }
                let common = options.overrides.description
                if !common.isEmpty { print("# every trial also: \(common.joined(separator: " "))") }
                for (trial, job) in trials {
                    print(
                        ([trial.name]
                            + trial.overrides(baseName: job.name.components(separatedBy: "/").first ?? job.name))
                            .joined(separator: "  "))
                }
            }
            return
        }
        let folder = out ?? "runs/\(URL(fileURLWithPath: grid!).deletingPathExtension().lastPathComponent)"
        try underMPI { world in
            try StartupCheck.checkLauncher(worldSize: world.size)
            let runner = GridRunner(
                grid: file, folder: folder, ranksPerTrial: ranksPerTrial, schedule: schedule, resume: resume,
                commandLine: options.overrides
            ) { line in
                print(line)
                fflush(stdout)
            }
            if let result = try runner.run(world: world) {
                print("sorted by \(result.ranking)")
                if let savings = result.savings { print(savings) }
                print(result.markdown)
                print("wrote \(folder)/leaderboard.{csv,json,md}, pareto.svg and report.html")
            }
        }
    }
}
