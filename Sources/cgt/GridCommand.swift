import ArgumentParser
import CGTTraining

/// `cgt grid`: the trials of a hyperparameter grid file.
struct GridCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grid",
        abstract: "List the trials of a grid file (README.md, 'Grids'), each checked as cgt train would check it.",
        discussion: """
            Prints one line per trial: its name, then the --set overrides that turn the base job into
            the trial's job. launch/grid-loop GRID.yaml NP trains them one after another on NP ranks.
            """)

    @Argument(help: "The grid file (YAML).")
    var grid: String

    @Flag(help: "Print the trials (the only mode so far).")
    var list = false

    func run() throws {
        do {
            let file = try GridFile.load(path: grid)
            let trials = try file.jobs()
            print("# \(trials.count) trials, \(file.search) search, sorted by \(file.metric); base: \(file.base)")
            for (trial, job) in trials {
                print(([trial.name] + trial.overrides(baseName: job.name.components(separatedBy: "/").first ?? job.name)).joined(separator: "  "))
            }
        } catch {
            throw reportFailure(error)
        }
    }
}
