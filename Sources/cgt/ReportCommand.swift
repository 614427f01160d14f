import ArgumentParser
import CGTCheckpoint
import CGTEvaluation
import CGTExperiments
import CGTFiles
import CGTJob
import CGTMPI
import CGTTraining
import Foundation

/// `cgt report`: one HTML page with every figure of a run, or of several runs side by side.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract:
            "Write <run>/report.html (opens offline) and <run>/figures/*.svg and *.csv: training curves per exit, exit distribution, accuracy vs cost with the Pareto front, reliability diagrams; for a grid folder, its leaderboard page; for several runs, a comparison page.",
        discussion: """
            Reads metrics.jsonl and the evaluation in <run>/eval/eval.json (or training's eval.json). When \
            that has no threshold sweep and the run has a checkpoint, runs cgt eval --sweep first.

            With several run folders, writes <out>/report.html, summary.csv and figures/ (default \
            runs/compare): runs of one job on the same data are a group (as in cgt table), drawn as \
            the mean and ± one standard deviation over their seeds of accuracy against expected FLOPs \
            and of held-out accuracy per epoch. Example: cgt report runs/softcgt/seed* runs/hardcgt/seed*
            """)

    @Argument(help: "The run folder (or a grid folder), or several run folders to compare.")
    var folders: [String]

    @Option(help: "Where the comparison of several runs goes (default runs/compare).")
    var out: String?

    @Option(help: "Thresholds of the sweep cgt eval runs when the run has none (start:stop:step).")
    var sweep = "0.5:0.99:0.01"

    @Flag(help: "Use the evaluations present; never run cgt eval.")
    var noEval = false

    func validate() throws {
        guard !folders.isEmpty else { throw ValidationError("Give a run folder, or several to compare.") }
        if folders.count == 1, out != nil {
            throw ValidationError(
                "--out is for comparing several runs; the report of one run goes into its folder (\(folders[0])/report.html)."
            )
        }
    }

    func run() throws {
        try reportingFailures {
            if folders.count == 1 {
                try reportOne(folders[0])
            } else {
                try compare()
            }
        }
    }

    /// The identity of a folder for comparing paths: absolute, `..` and links resolved.
    private static func identity(_ path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
    }

    /// Evaluates with a sweep (as `cgt eval --sweep` does) each of `runs` whose evaluation has
    /// no sweep and that has a checkpoint, all in one MPI session (MPI starts once per process).
    private func addSweepsIfMissing(_ runs: [String]) throws {
        let missing = runs.map(RunDirectory.init(path:)).filter { run in
            let hasSweep =
                FileManager.default.contents(atPath: run.evaluation.reportFile).map {
                    String(decoding: $0, as: UTF8.self).contains("\"sweep\"")
                } ?? false
            return !hasSweep && !noEval && FileManager.default.fileExists(atPath: run.lastCheckpoint)
        }
        guard !missing.isEmpty else { return }
        guard let taus = ThresholdSweep.range(sweep) else {
            throw ValidationError("--sweep needs start:stop:step within [0, 1], got '\(sweep)'")
        }
        try underMPI { world in
            for run in missing {
                var evaluation = CheckpointEvaluation(checkpoint: run.lastCheckpoint)
                evaluation.sweep = taus
                evaluation.out = run.evaluation.path
                print("running cgt eval --sweep \(sweep) on \(run.path) for the report")
                try EvalCommand.present(evaluation.run(over: world), of: evaluation, savingPolicy: false)
            }
        }
    }

    /// What the readers left out, one line each on standard error.
    private func warn(_ warnings: [String]) {
        for warning in warnings { FileHandle.standardError.write(Data("cgt: warning: \(warning)\n".utf8)) }
    }

    private func reportOne(_ folder: String) throws {
        let grid = GridFolder(path: folder)
        if grid.isGrid {
            let summary = try GridSummary.load(folder: folder)
            try summary.write()
            print("wrote \(grid.reportFile) (a grid: leaderboard, Pareto front, a page per trial)")
            return
        }
        try addSweepsIfMissing([folder])
        let run = RunDirectory(path: folder)
        let report = try RunReport(run: run)
        warn(report.warnings)
        let drawn = try report.write()
        print("wrote \(run.reportFile) and \(drawn.count) figures (SVG with their CSV) in \(run.figuresFolder)")
    }

    private func compare() throws {
        let out = self.out ?? "runs/compare"
        for run in folders {
            if GridFolder(path: run).isGrid {
                throw ValidationError(
                    "\(run) is a grid folder: report it alone (cgt report \(run)), or compare its trials' folders (\(GridFolder(path: run).trial(GridFolder.trialName(0)).path) ...)."
                )
            }
            if Self.identity(run) == Self.identity(out) {
                throw ValidationError(
                    "--out \(out) is one of the runs compared; give the comparison a folder of its own.")
            }
        }
        try OutputFolder.check(out)
        // Grouping first: a duplicate seed or an unfinished run is refused before any evaluation.
        _ = try ResultsTable.load(runs: folders)
        try addSweepsIfMissing(folders)
        let comparison = try ComparisonReport(runs: folders)
        warn(comparison.groups.flatMap { $0.reports.flatMap(\.warnings) })
        let drawn = try comparison.write(to: out)
        let folder = ComparisonFolder(path: out)
        print(
            "wrote \(folder.reportFile): \(folders.count) runs in \(comparison.groups.count) groups, \(drawn.count) figures (SVG with their CSV) in \(folder.figuresFolder), \(folder.summaryFile)"
        )
    }
}
