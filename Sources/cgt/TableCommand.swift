import ArgumentParser
import CGTExperiments
import CGTJob
import CGTTraining
import Foundation

/// `cgt table`: the paper's Table 1 from finished runs.
struct TableCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "table",
        abstract: "Print a Markdown table in the format of the paper's Table 1 from finished runs.",
        discussion: """
            Runs of the same job (the job file's name) on the same data (the SHA-256 eval.json \
            records) are one row: mean ± standard deviation over their seeds. Runs of one job on \
            different data are different rows, named with the data file and the start of its hash; \
            two runs of a row with the same seed are refused. Example: cgt table runs/paper/indian_pines/*/seed*
            """)

    @Argument(help: "Run folders (each with job.yaml, metrics.jsonl and eval.json).")
    var runs: [String]

    func run() throws {
        try reportingFailures {
            let table = try ResultsTable.load(runs: runs)
            for warning in table.warnings { FileHandle.standardError.write(Data("cgt: warning: \(warning)\n".utf8)) }
            print(table.markdown())
        }
    }
}
