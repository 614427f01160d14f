import CGTCheckpoint
import CGTData
import CGTEvaluation
import CGTFiles
import CGTJob
import CGTModel
import Foundation

/// Decides when a run's state goes to disk and reads it back, beside the training loop (the
/// model is Lightning's `checkpoint_connector.py` with `ModelCheckpoint`): the loop says what
/// happened (an epoch ended, a stop signal arrived, a review ended the run, training finished)
/// and the connector decides what to write: the epoch file at the job's cadence, `last.h5`,
/// `interrupted.h5`, `best.h5` with `best.json`, the final `eval.json`.
///
/// Rank 0 writes and restores; `gatherHookState` is a collective every rank calls first.
final class CheckpointConnector {
    /// Where training stands: what a checkpoint records beside the tensors.
    struct Position {
        /// Epochs completed and optimizer steps taken.
        var epoch: Int
        var globalStep: Int
        var classGroups: ClassGroups?
    }

    let job: Job
    let run: RunDirectory
    private let network: EarlyExitNetwork
    private let optimizer: Optimizer
    private let hooks: [TrainingHook]
    private let featureShape: [Int]
    private let classNames: [String]
    /// SHA-256 of the data file, on rank 0 (which writes it into checkpoints and reports).
    let dataSHA256: String?
    /// The buffers an evaluation re-estimated (`eval.bn_recalibration`) and the epoch it
    /// measured: a checkpoint of that epoch stores them as the model's, so the file is the
    /// model its reported numbers describe. Training itself goes on with its own statistics.
    private var reestimated: (epoch: Int, values: [Float])?
    private var best: BestCheckpoint?
    /// Rank 0's hold on the run folder while the run writes it.
    private var lock: RunLock?

    init(
        job: Job, run: RunDirectory, network: EarlyExitNetwork, optimizer: Optimizer, hooks: [TrainingHook],
        featureShape: [Int], classNames: [String], dataSHA256: String?
    ) {
        self.job = job
        self.run = run
        self.network = network
        self.optimizer = optimizer
        self.hooks = hooks
        self.featureShape = featureShape
        self.classNames = classNames
        self.dataSHA256 = dataSHA256
    }

    // MARK: - Restoring

    /// The newest checkpoint of the run, restored into the network, optimizer and hooks (rank 0):
    /// returns where it left training and the file. Refuses a checkpoint of another job or of
    /// other data's shape, one that trained more epochs than the job has, and a mid-epoch one
    /// on another number of ranks.
    func restoreNewest(ranks: Int, stepsPerEpoch: Int) throws -> (
        position: Position, partial: PartialEpoch?, file: String
    ) {
        guard let newest = run.newestCheckpoint else {
            throw CheckpointError(file: run.lastCheckpoint, "--resume: no checkpoint in \(run.checkpointFolder)")
        }
        let checkpoint = try Checkpoint.read(from: newest)
        var saved = checkpoint.job.withResumableSettings(of: job)
        // The data may have moved: the same content (by SHA-256) under another path is the same data.
        // Checkpoints of older versions store the path as given, relative to where training ran.
        if JobOverrides.resolved(saved.data.path) == job.data.path { saved.data.path = job.data.path }
        if saved.data.path != job.data.path, let stored = checkpoint.dataSHA256, stored == dataSHA256 {
            saved.data.path = job.data.path
        }
        guard saved == job else {
            let differences = (try? JobLoader.differences(from: saved, to: job)) ?? []
            throw CheckpointError(
                file: newest,
                "--resume: the checkpoint was written by a different job (\(differences.prefix(3).joined(separator: "; "))\(differences.count > 3 ? "; ..." : "")); only \(Job.resumableKeysInWords) may change"
            )
        }
        guard checkpoint.epoch <= job.training.epochs else {
            throw CheckpointError(
                file: newest,
                "--resume: the run has trained \(checkpoint.epoch) epochs, more than training.epochs \(job.training.epochs); a finished run is not trained back"
            )
        }
        // The same job on a file of other samples (a convolution's weights fit any image size).
        guard checkpoint.featureShape == featureShape, checkpoint.classNames.count == classNames.count else {
            throw CheckpointError(
                file: newest,
                "--resume: trained on samples of shape \(checkpoint.featureShape) in \(checkpoint.classNames.count) classes, the data has \(featureShape) in \(classNames.count)"
            )
        }
        try checkpoint.restore(into: network, optimizer: optimizer, source: newest)
        if let partial = checkpoint.partialEpoch {
            // With training.shuffle: local the steps of an epoch depend on the number of ranks.
            guard partial.step < stepsPerEpoch, partial.ranks == ranks else {
                throw CheckpointError(
                    file: newest,
                    "--resume: stopped at step \(partial.step) of an epoch on \(partial.ranks) ranks; resume it on as many ranks (this run has \(ranks), \(stepsPerEpoch) steps per epoch)"
                )
            }
        }
        for hook in hooks { try hook.restore(from: checkpoint, source: newest) }
        return (
            Position(epoch: checkpoint.epoch, globalStep: checkpoint.globalStep, classGroups: checkpoint.classGroups),
            checkpoint.partialEpoch, newest
        )
    }

    // MARK: - The run folder

    /// Rank 0's first writes: the folder, its lock, `job.yaml`, metrics cut after `epoch` (the
    /// epoch resumed from), and the best epoch so far of a resumed run.
    func begin(epoch: Int) throws {
        lock = try run.begin(jobYAML: try JobLoader.yaml(job), keepingMetricsUpTo: epoch)
        best = BestCheckpoint(metric: job.training.keepBest, run: run, resumed: epoch > 0)
    }

    // MARK: - Deciding what to write

    /// Collects every hook's state (a collective: every rank calls it before rank 0 writes).
    func gatherHookState(_ context: HookContext) throws {
        for hook in hooks { try hook.gatherState(context) }
    }

    /// Keeps the buffers an evaluation of `epoch` re-estimated, for that epoch's checkpoint.
    func evaluated(buffers: [Float], epoch: Int) {
        reestimated = (epoch, buffers)
    }

    /// The re-estimated buffers of `epoch`, if its evaluation made any.
    func evaluatedBuffers(of epoch: Int) -> [Float]? {
        reestimated.flatMap { $0.epoch == epoch ? $0.values : nil }
    }

    /// An epoch ended (rank 0): its checkpoint when the cadence, the last epoch or a stop asks
    /// for one, and `best.h5` when the validation split scored best so far.
    func epochEnded(_ position: Position, validation: RoutingStatistics?, stopping: Bool) throws {
        let epoch = position.epoch
        var written: String?
        if epoch % job.training.checkpointEvery == 0 || epoch == job.training.epochs || stopping {
            written = try writeEpoch(position)
        }
        if let validation { try offerBest(validation, position, written: written) }
    }

    /// A review ended training after this epoch (rank 0): its checkpoint, if the cadence did not write it.
    func stoppedEarly(_ position: Position) throws {
        if position.epoch % job.training.checkpointEvery != 0 { try writeEpoch(position) }
    }

    /// A stop signal mid-epoch (rank 0): `interrupted.h5`, written whole or not at all, holds
    /// the state and where the epoch stands.
    func writeInterrupted(_ position: Position, partial: PartialEpoch) throws {
        var checkpoint = makeCheckpoint(position, evaluated: false)
        checkpoint.partialEpoch = partial
        try checkpoint.write(to: run.interruptedCheckpoint)
    }

    /// Training finished (rank 0): the final evaluation's `eval.json` and `validation.json`,
    /// which describe `last.h5`, and `best.h5` if the last epoch scored best.
    func finished(_ position: Position, test: RoutingStatistics, validation: RoutingStatistics?) throws {
        try AtomicFile.write(
            try provenance(position, split: .test).json(test), to: run.evaluationFile)
        if let validation {
            try AtomicFile.write(
                try provenance(position, split: .validation).json(validation), to: run.validationFile)
            try offerBest(validation, position)
        }
    }

    // MARK: - Writing

    /// Writes the epoch's checkpoint and links `last.h5` to it; returns its path.
    @discardableResult
    private func writeEpoch(_ position: Position) throws -> String {
        let path = run.checkpoint(epoch: position.epoch)
        try makeCheckpoint(position, evaluated: true).write(to: path)
        try AtomicFile.link(path, to: run.lastCheckpoint)
        // A whole epoch past a mid-epoch stop makes its checkpoint stale.
        unlink(run.interruptedCheckpoint)
        return path
    }

    /// `best.h5` when `validation` scored best so far: a link to the epoch's file when it was
    /// just `written` (the same state), else written.
    private func offerBest(_ validation: RoutingStatistics, _ position: Position, written: String? = nil) throws {
        try best?.offer(validation, epoch: position.epoch) { path in
            if let written {
                try AtomicFile.link(written, to: path)
            } else {
                try makeCheckpoint(position, evaluated: true).write(to: path)
            }
        }
    }

    /// What the final evaluation measured: the last checkpoint, which holds that model.
    private func provenance(_ position: Position, split: DatasetSplitName) -> EvaluationProvenance {
        EvaluationProvenance(
            checkpoint: JobOverrides.resolved(run.lastCheckpoint), epoch: position.epoch,
            batchNormStatistics: evaluatedBuffers(of: position.epoch) != nil ? "re-estimated" : "training",
            data: job.data.path, dataSHA256: dataSHA256 ?? "", split: split)
    }

    /// The run's state at `position`; `evaluated`: with that epoch's re-estimated statistics as
    /// the model's, if any.
    private func makeCheckpoint(_ position: Position, evaluated: Bool) -> Checkpoint {
        var checkpoint = Checkpoint(
            job: job, epoch: position.epoch, globalStep: position.globalStep, featureShape: featureShape,
            classNames: classNames, network: network, optimizer: optimizer, classGroups: position.classGroups,
            evaluatedBuffers: evaluated ? evaluatedBuffers(of: position.epoch) : nil, dataSHA256: dataSHA256)
        for hook in hooks { hook.record(into: &checkpoint) }
        return checkpoint
    }
}
