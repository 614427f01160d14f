import ArgumentParser
import CGTExperiments
import CGTJob
import CGTMPI
import CGTTraining
import Foundation

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train the network a job file describes; rank 0 writes checkpoints, metrics and eval.json.")

    @Argument(help: "The job file (YAML). See README.md, 'Job files'.")
    var job: String

    @OptionGroup var dataset: DatasetOverride

    @Option(help: "The run folder for job.yaml, metrics.jsonl, checkpoints/ and eval.json.")
    var out: String?

    @Option(
        name: .customLong("set"),
        help: ArgumentHelp("Override a job key, e.g. --set optimizer.lr=0.01 (repeatable).", valueName: "key=value"))
    var overrides: [String] = []

    @Option(help: "Override training.seed.")
    var seed: UInt64?

    @Flag(help: "Continue from the newest checkpoint in the run folder.")
    var resume = false

    @Flag(help: "Print nothing but errors.")
    var quiet = false

    func run() throws {
        try underMPI(train(world:))
    }

    private func train(world: Communicator) throws {
        let (resolved, run) = try world.collectively { () throws -> (Job, RunDirectory) in
            try StartupCheck.checkLauncher(worldSize: world.size)
            // Paths and seeds are set as values, not parsed as YAML like --set.
            var resolved = try JobLoader.load(path: job, overrides: overrides)
            resolved.data.path = dataset.path(for: resolved)
            if let seed { resolved.training.seed = seed }
            let run = RunDirectory(path: out ?? "runs/\(resolved.name)")
            if world.isRoot && !resume && run.hasCheckpoint {
                throw ValidationError(
                    "\(run.path) already holds checkpoints: pass --resume to continue, or choose another --out")
            }
            return (resolved, run)
        }
        try StartupCheck.verify(resolved, world: world)
        let progress = ProgressReporter(enabled: world.isRoot && !quiet)
        progress.say(
            "cgt \(CGTVersion.current): \(resolved.name), \(resolved.method.name), \(world.size) rank\(world.size == 1 ? "" : "s"), data \(resolved.data.path), run folder \(run.path)"
        )
        let trainer = try world.collectively {
            do {
                return try Trainer(job: resolved, run: run, communicator: world, resume: resume, progress: progress)
            } catch let error as JobError where error.source == "job" {
                // The plan's checks of the job against the data name the job file.
                throw JobError(source: job, key: error.key, error.problem)
            }
        }
        try trainer.synchronize()
        let statistics = try trainer.run()
        if world.isRoot && !quiet {
            print(RoutingTable.render(statistics))
            print("wrote \(run.evaluationFile)")
        }
    }
}
