import ArgumentParser
import CGTCheckpoint
import CGTEvaluation
import CGTExperiments
import CGTFiles
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

    @OptionGroup var options: JobOptions

    @Option(help: "The run folder for job.yaml, metrics.jsonl, checkpoints/ and eval.json.")
    var out: String?

    @Flag(help: "Continue from the newest checkpoint in the run folder.")
    var resume = false

    @Flag(help: "Print nothing but errors.")
    var quiet = false

    func run() throws {
        StopRequest.blockEarly()
        SignalDrill.reached(.startup)
        var interrupted = false
        try underMPI { world in interrupted = try train(world: world) }
        // Every rank stopped at the same step and MPI ended cleanly; the status asks for a requeue.
        if interrupted { throw ExitCode(TrainingInterrupted.exitStatus) }
    }

    /// Slurm sets SLURM_RESTART_COUNT in a job it requeued: its run folder is continued by itself.
    private var isRequeued: Bool {
        (Int(ProcessInfo.processInfo.environment["SLURM_RESTART_COUNT"] ?? "") ?? 0) > 0
    }

    /// Trains; returns true when a stop signal ended training at a checkpoint.
    private func train(world: Communicator) throws -> Bool {
        let (resolved, run, changes) = try world.collectively { () throws -> (Job, RunDirectory, [String]) in
            try StartupCheck.checkLauncher(worldSize: world.size)
            let given = try options.overrides.load(job)
            let run = RunDirectory(path: out ?? "runs/\(given.name)")
            if world.isRoot && !resume && !isRequeued && run.hasCheckpoint {
                throw ValidationError(
                    "\(run.path) already holds checkpoints: pass --resume to continue, or choose another --out")
            }
            guard resume || (isRequeued && run.hasCheckpoint) else { return (given, run, []) }
            let (continued, changes) = try run.resumedJob(given: given, file: job, overrides: options.overrides)
            return (continued, run, changes)
        }
        try StartupCheck.verify(resolved, world: world)
        let progress = ProgressReporter(enabled: world.isRoot && !quiet)
        progress.say(
            "cgt \(CGTVersion.current): \(resolved.name), \(resolved.method.name), \(world.size) rank\(world.size == 1 ? "" : "s"), data \(resolved.data.path), run folder \(run.path)"
        )
        let resuming = resume || (isRequeued && run.hasCheckpoint)
        if resuming && !resume { progress.say("requeued (SLURM_RESTART_COUNT is set): resuming \(run.path)") }
        for change in changes { progress.say(change) }
        StopRequest.install(resolved.runtime.stopSignals)
        let trainer = try world.collectively {
            do {
                return try Trainer(job: resolved, run: run, communicator: world, resume: resuming, progress: progress)
            } catch let error as JobError where error.source == "job" {
                // The plan's checks of the job against the data name the job file.
                throw JobError(source: job, key: error.key, error.problem)
            }
        }
        try trainer.synchronize()
        if resuming && trainer.hasTrainedEveryEpoch && FileManager.default.fileExists(atPath: run.evaluationFile) {
            // As Lightning's fit(ckpt_path="last") at max_epochs: nothing is trained, evaluated or written.
            progress.say(
                "\(run.path) has trained all \(resolved.training.epochs) epochs and holds its evaluation: nothing to do (--set training.epochs=N trains on)"
            )
            return false
        }
        let statistics: RoutingStatistics
        do {
            statistics = try trainer.run()
        } catch let stopped as TrainingInterrupted {
            if stopped.isReporter { FileHandle.standardError.write(Data("cgt: \(stopped)\n".utf8)) }
            return true
        }
        if world.isRoot && !quiet {
            print(RoutingTable.render(statistics))
            print("wrote \(run.evaluationFile)")
        }
        return false
    }
}
