import ArgumentParser
import CGTExperiments
import CGTFiles
import CGTJob
import CGTTraining
import Foundation

/// `cgt report`: one HTML page with every figure of a run.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract:
            "Write <run>/report.html (opens offline) and <run>/figures/*.svg: training curves per exit, exit distribution, accuracy vs cost with the Pareto front, reliability diagrams; for a grid folder, its leaderboard page.",
        discussion: """
            Reads metrics.jsonl and the evaluation in <run>/eval/eval.json (or training's eval.json). When \
            that has no threshold sweep and the run has a checkpoint, runs cgt eval --sweep first.
            """)

    @Argument(help: "The run folder.")
    var folder: String

    @Option(help: "Thresholds of the sweep cgt eval runs when the run has none (start:stop:step).")
    var sweep = "0.5:0.99:0.01"

    @Flag(help: "Use the evaluations present; never run cgt eval.")
    var noEval = false

    func run() throws {
        try reportingFailures {
            let run = folder
            if FileManager.default.fileExists(atPath: "\(run)/grid.json") {
                let summary = try GridSummary.load(folder: run)
                try summary.write()
                print("wrote \(run)/report.html (a grid: leaderboard, Pareto front, a page per trial)")
                return
            }
            let folder = RunDirectory(path: run)
            let evaluation = "\(run)/eval/eval.json"
            let hasSweep =
                FileManager.default.contents(atPath: evaluation).map {
                    String(decoding: $0, as: UTF8.self).contains("\"sweep\"")
                } ?? false
            if !hasSweep && !noEval && FileManager.default.fileExists(atPath: folder.lastCheckpoint) {
                print("running cgt eval --sweep \(sweep) for the report")
                let eval = try EvalCommand.parse([
                    "--checkpoint", folder.lastCheckpoint, "--sweep", sweep, "--out", "\(run)/eval",
                ])
                try eval.run()
            }
            let report = try RunReport(run: folder)
            let figures = "\(run)/figures"
            try OutputFolder.create(figures)
            let drawn = report.figures()
            for figure in drawn {
                try AtomicFile.write(Data(figure.svg.utf8), to: "\(figures)/\(figure.name).svg")
            }
            try AtomicFile.write(Data(report.html(figures: drawn).utf8), to: "\(run)/report.html")
            print("wrote \(run)/report.html and \(drawn.count) figures in \(figures)")
        }
    }
}
