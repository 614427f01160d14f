import CGTCheckpoint
import CGTEvaluation
import CGTFiles
import CGTJob
import CGTMPI
import CGTTraining
import Foundation

/// What happened to one trial of a grid: `<grid>/trial-NNN/status.json`.
public struct TrialStatus: Codable, Equatable, Sendable {
    public var trial: String
    /// (key, value) of every varied parameter.
    public var assignments: [[String]]
    public var status: TrialState
    public var message: String?
    public var seconds: Double?
    public var ranks: Int
    public var group: Int
    /// The trial's score on the grid's metric at each rung it reached (`method: asha`).
    public var rungs: [RungScore]?
    /// Epochs trained, and the epochs the trial's job asks for: their difference is what
    /// stopping early saved.
    public var epochs: Int?
    public var plannedEpochs: Int?

    enum CodingKeys: String, CodingKey {
        case trial, assignments, status, message, seconds, ranks, group, rungs, epochs
        case plannedEpochs = "planned_epochs"
    }

    public static func path(_ folder: String) -> String { RunDirectory(path: folder).trialStatusFile }

    public static func read(_ folder: String) -> TrialStatus? {
        FileManager.default.contents(atPath: path(folder)).flatMap {
            try? JSONDecoder().decode(TrialStatus.self, from: $0)
        }
    }

    /// The epoch at which successive halving stopped the trial (nil unless `stopped`).
    public var stoppedAtEpoch: Int? { status == .stopped ? rungs?.last?.epoch : nil }

    func write(to folder: String) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(self), to: Self.path(folder))
    }
}

/// Where a trial of a grid is (`status.json`, the leaderboard's `status`).
public enum TrialState: String, Codable, Sendable, CustomStringConvertible {
    /// Not started (no status.json yet).
    case pending
    case running
    case done
    /// Stopped with an error, which `message` gives; the grid goes on.
    case failed
    /// Stopped at a rung by successive halving (`method: asha`): it scored below the top 1/eta there.
    case stopped

    /// Done, failed or stopped: a resumed grid does not run it again.
    public var isFinished: Bool { self != .pending && self != .running }
    public var description: String { rawValue }
}

/// A trial's score at a rung of successive halving.
public struct RungScore: Codable, Equatable, Sendable {
    public var epoch: Int
    /// The grid's metric at `eval.tau`.
    public var value: Double
    /// The score is on the validation split (false: the data has none, on the test split).
    public var onValidation: Bool
    /// What the trial had to reach (nil for the first trial at the rung).
    public var cutoff: Double?

    enum CodingKeys: String, CodingKey {
        case epoch, value, cutoff
        case onValidation = "on_validation"
    }
}

/// How a grid deals its trials to the groups of ranks.
public enum TrialSchedule: String, CaseIterable, Sendable {
    /// Each group takes the next trial when done (no idle ranks while trials remain).
    case queue
    /// Trial i goes to group i mod groups: the same placement every time.
    case `static`
}

/// Runs the trials of a grid in one MPI job: the world is split into groups of
/// `ranksPerTrial` ranks, each group trains one trial at a time data-parallel and takes the
/// next when done. With the `queue` schedule the next trial comes from a counter every group
/// advances on its own (MPI one-sided), so fast and slow trials leave no rank idle; `static`
/// deals trial i to group i mod groups.
public struct GridRunner {
    public let grid: GridFile
    public let folder: String
    public let ranksPerTrial: Int
    public let schedule: TrialSchedule
    public let resume: Bool
    /// `cgt grid --set`, `--data`, `--seed`: applied to every trial after its parameters.
    public let commandLine: JobOverrides
    public let say: (String) -> Void

    public init(
        grid: GridFile, folder: String, ranksPerTrial: Int, schedule: TrialSchedule, resume: Bool,
        commandLine: JobOverrides = JobOverrides(), say: @escaping (String) -> Void
    ) {
        self.commandLine = commandLine
        self.grid = grid
        self.folder = folder
        self.ranksPerTrial = ranksPerTrial
        self.schedule = schedule
        self.resume = resume
        self.say = say
    }

    /// The file that records which grid the folder holds, so that `--resume` continues the same one.
    var manifestFile: String { GridFolder(path: folder).manifestFile }

    struct Manifest: Codable, Equatable {
        var grid: String
        var base: String
        var metric: SelectionMetric
        var trials: [[String]]
        /// What the command line changed in every trial (absent in grids run before it could).
        var commandLine: [String]?
        /// How trials are stopped early (`method: asha`).
        var asha: SuccessiveHalving?

        enum CodingKeys: String, CodingKey {
            case grid, base, metric, trials, asha
            case commandLine = "command_line"
        }
    }

    /// Trains every unfinished trial; returns the summary (on world rank 0; nil elsewhere).
    public func run(world: Communicator) throws -> GridSummary? {
        try world.collectively {
            guard world.size % ranksPerTrial == 0 else {
                throw TrainingError("--ranks-per-trial \(ranksPerTrial) does not divide the \(world.size) ranks")
            }
        }
        // Every rank looks at the folder before rank 0 writes into it.
        let (trials, manifest, exists) = try world.collectively { try prepare() }
        try world.collectively { if world.isRoot && !exists { try writeManifest(manifest) } }
        let groups = world.size / ranksPerTrial
        let groupIndex = world.rank / ranksPerTrial
        let group = try world.split(color: groupIndex, key: world.rank)
        let pending = trials.filter { !isFinished($0.0) }
        if world.isRoot {
            say(
                "grid: \(trials.count) trials, \(trials.count - pending.count) finished before, \(groups) group(s) of \(ranksPerTrial) rank(s), \(schedule) schedule"
            )
        }
        let counter = schedule == .queue ? try SharedCounter(communicator: world) : nil
        var next = groupIndex
        while true {
            var index: Int64
            if let counter {
                index = group.isRoot ? try counter.fetchAndAdd(1) : 0
                try withUnsafeMutableBytes(of: &index) { try group.broadcast($0) }
            } else {
                index = Int64(next)
                next += groups
            }
            guard index < pending.count else { break }
            try runTrial(
                pending[Int(index)].0, job: pending[Int(index)].1, group: group, groupIndex: groupIndex,
                serving: counter)
        }
        try world.barrier()
        try counter?.free()
        guard world.isRoot else { return nil }
        let summary = try GridSummary.load(folder: folder)
        try summary.write()
        return summary
    }

    /// Checks the grid and resolves every trial's job; with `--resume`, checks that the folder
    /// holds the same grid. Returns the trials, the manifest, and whether it exists already.
    private func prepare() throws -> ([(GridFile.Trial, Job)], Manifest, Bool) {
        let jobs = try grid.jobs(commandLine: commandLine)
        let manifest = Manifest(
            grid: grid.path, base: grid.base, metric: grid.metric, trials: jobs.map { $0.0.overrides },
            commandLine: commandLine.description, asha: grid.halving)
        let exists = FileManager.default.fileExists(atPath: manifestFile)
        if exists {
            guard resume else {
                throw TrainingError(
                    "\(folder) already holds a grid: pass --resume to continue it, or choose another --out")
            }
            let saved = try JSONDecoder().decode(
                Manifest.self, from: Data(contentsOf: URL(fileURLWithPath: manifestFile)))
            guard saved.trials == manifest.trials else {
                throw TrainingError(
                    "\(manifestFile): the folder holds a different grid (other trials); --resume continues the same grid only"
                )
            }
            guard (saved.commandLine ?? []) == manifest.commandLine else {
                func spelled(_ options: [String]?) -> String {
                    options?.isEmpty ?? true ? "no --set, --data or --seed" : options!.joined(separator: " ")
                }
                throw TrainingError(
                    "\(manifestFile): the grid ran with \(spelled(saved.commandLine)), now with \(spelled(manifest.commandLine)); --resume continues the same grid only"
                )
            }
            guard saved.asha == manifest.asha else {
                throw TrainingError(
                    "\(manifestFile): the grid ran with other successive-halving settings (asha); --resume continues the same grid only"
                )
            }
        }
        return (jobs, manifest, exists)
    }

    /// Successive halving at a rung, on the trial's root rank: records `score` in the trial's
    /// status beside the cutoff the other trials' scores at this rung set, and returns whether
    /// the trial goes on (when not, its status is `stopped`).
    private func review(
        _ trial: GridFile.Trial, status: inout TrialStatus, halving: SuccessiveHalving, epoch: Int, score: RungScore
    ) throws -> Bool {
        let others = try FileManager.default.contentsOfDirectory(atPath: folder).filter {
            GridFolder.isTrialName($0) && $0 != trial.name
        }
        let recorded = others.compactMap { name in
            TrialStatus.read(GridFolder(path: folder).trial(name).path)?.rungs?.first { $0.epoch == epoch }?.value
        }
        var score = score
        score.cutoff = halving.cutoff(recorded: recorded, metric: grid.metric)
        let goesOn = halving.continues(score.value, recorded: recorded, metric: grid.metric)
        status.rungs = (status.rungs ?? []).filter { $0.epoch != epoch } + [score]
        if !goesOn { status.status = .stopped }
        try status.write(to: trialFolder(trial))
        return goesOn
    }

    private func writeManifest(_ manifest: Manifest) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(manifest), to: manifestFile)
        let gridFile = GridFolder(path: folder).gridFile
        try? FileManager.default.removeItem(atPath: gridFile)
        try FileManager.default.copyItem(atPath: grid.path, toPath: gridFile)
    }

    func trialFolder(_ trial: GridFile.Trial) -> String { GridFolder(path: folder).trial(trial.name).path }

    private func isFinished(_ trial: GridFile.Trial) -> Bool {
        guard let status = TrialStatus.read(trialFolder(trial)) else { return false }
        return status.status.isFinished
    }

    /// Trains one trial on `group`; an error is recorded in its status and the grid goes on.
    private func runTrial(
        _ trial: GridFile.Trial, job: Job, group: Communicator, groupIndex: Int, serving counter: SharedCounter?
    ) throws {
        let path = trialFolder(trial)
        let run = RunDirectory(path: path)
        let started = Date()
        var status = TrialStatus(
            trial: trial.name, assignments: trial.assignments.map { [$0.key, $0.value] }, status: .running,
            message: nil, seconds: nil, ranks: group.size, group: groupIndex,
            // A resumed trial keeps the rungs it passed.
            rungs: grid.halving == nil ? nil : TrialStatus.read(path)?.rungs ?? [],
            plannedEpochs: job.training.epochs)
        let resumeTrial = try group.collectively { () -> Bool in
            if group.isRoot { try status.write(to: path) }
            return run.hasCheckpoint
        }
        if group.isRoot {
            say(
                "\(trial.name) on group \(groupIndex)\(resumeTrial ? " (resumed)" : ""): \(trial.overrides.joined(separator: " "))"
            )
        }
        do {
            let trainer = try group.collectively {
                try Trainer(
                    job: job, run: run, communicator: group, resume: resumeTrial,
                    progress: ProgressReporter(enabled: false))
            }
            // Rank 0 holds the queue's counter: while it trains, other groups still get trials.
            if let counter { trainer.afterEachStep = { counter.serve() } }
            if let halving = grid.halving {
                trainer.review = EpochReview(epochs: Set(halving.rungs(forEpochs: job.training.epochs))) {
                    epoch, scores, onValidation in
                    try self.review(
                        trial, status: &status, halving: halving, epoch: epoch,
                        score: RungScore(
                            epoch: epoch, value: self.grid.metric.value(of: scores.scores), onValidation: onValidation))
                }
            }
            try trainer.synchronize()
            let result: RoutingStatistics
            do {
                result = try trainer.run()
            } catch let stopped as TrainingStoppedEarly {
                status.epochs = stopped.epoch
                status.seconds = Date().timeIntervalSince(started)
                guard group.isRoot else { return }
                try status.write(to: path)
                let score = status.rungs!.last!
                say(
                    String(
                        format: "%@ stopped after epoch %d: %@ %.4f below the rung's cutoff %.4f (%.1f s)", trial.name,
                        stopped.epoch, grid.metric.rawValue, score.value, score.cutoff ?? .nan, status.seconds!))
                return
            }
            status.status = .done
            status.epochs = job.training.epochs
            status.seconds = Date().timeIntervalSince(started)
            guard group.isRoot else { return }
            try status.write(to: path)
            say(
                String(
                    format: "%@ done in %.1f s: accuracy %.4f, macro F1 %.4f, relative cost %.3f", trial.name,
                    status.seconds!, result.accuracy, result.macroF1, result.relativeCost))
        } catch let failure as AgreedFailure {
            // Only the rank that failed knows the message: it records the failure.
            status.status = .failed
            status.message = failure.underlying.map { "\($0)" } ?? "failed"
            status.seconds = Date().timeIntervalSince(started)
            if failure.isReporter {
                try status.write(to: path)
                say("\(trial.name) failed: \(status.message!)")
            }
            try group.barrier()
        }
    }
}
