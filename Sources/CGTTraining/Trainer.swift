import CGTDNNL
import CGTData
import CGTEvaluation
import CGTFiles
import CGTJob
import CGTKernels
import CGTMPI
import CGTModel
import Foundation

/// Trains an early-exit network as a job describes, data-parallel over the ranks of a communicator.
///
/// Every rank computes forward, gates and gradients for its part of each global batch; the
/// gradients are summed over ranks in fixed buckets (`DataParallelStrategy`), and every rank
/// takes the same optimizer step. Rank 0 writes the metrics and checkpoints; evaluation is
/// sharded over ranks and reduced. Nothing here runs a collective while another rank may
/// have failed: local work that can fail runs inside `strategy.together`.
public final class Trainer {
    public let job: Job
    public let runDirectory: RunDirectory
    public let network: EarlyExitNetwork
    public let optimizer: Optimizer
    let plan: TrainingPlan
    let strategy: DataParallelStrategy
    let weighting: ExitWeighting
    let objective: ExitObjective
    let reader: DatasetReader
    let shard: TrainingShard
    let testShard: DatasetSplit
    /// This rank's share of the validation split, if the data has one.
    let validationShard: DatasetSplit?
    let hooks: [TrainingHook]
    /// ClassyNet's groups, once given or chosen (nil before, and for every other method).
    public internal(set) var classGroups: ClassGroups?
    var progress: ProgressReporter
    /// Runs after every training step on every rank: a grid uses it to serve the other groups'
    /// requests for their next trial (`SharedCounter.serve`).
    public var afterEachStep: (() -> Void)?
    /// Asked after chosen epochs whether training goes on: a grid's successive halving stops
    /// trials this way (`EpochReview`).
    public var review: EpochReview?
    /// Rank 0's hold on the run folder while `run` writes it.
    private var runLock: RunLock?
    /// The buffers an evaluation re-estimated (`eval.bn_recalibration`) and the epoch it
    /// measured: a checkpoint of that epoch stores them as the model's, so the file is the
    /// model its reported numbers describe. Training itself goes on with its own statistics.
    var evaluatedBuffers: (epoch: Int, values: [Float])?
    /// SHA-256 of the data file, on rank 0 (which writes it into checkpoints and reports).
    let dataSHA256: String?
    /// Steps of the current epoch already taken when resuming from a mid-epoch checkpoint,
    /// and that epoch's statistics so far (summed over ranks, held by rank 0).
    private var resumePoint: (step: Int, partial: [Double]?) = (0, nil)
    /// Rank 0's TensorBoard event file (`logging.tensorboard`), and the per-step tags made once.
    private var tensorBoard: TensorBoardLog?
    private lazy var stepTags: (loss: [String], gate: [String]) = (
        (1...network.exitCount).map { "train/loss_exit\($0)" }, (1...network.exitCount).map { "train/gate_exit\($0)" }
    )
    /// Epochs completed and optimizer steps taken.
    public private(set) var epoch = 0
    public private(set) var globalStep = 0
    /// The run's up-front read of its first epoch's rows (`EpochMetrics.dataStartupSeconds`),
    /// until that epoch's metrics carry it.
    private var startupReadSeconds: Double?

    /// Opens this rank's data, checks the job against it, and builds the network and optimizer;
    /// on rank 0 with `resume`, reads the newest checkpoint. Local work only: call
    /// `synchronize()` on every rank next.
    public init(job: Job, run: RunDirectory, communicator: Communicator?, resume: Bool, progress: ProgressReporter)
        throws
    {
        self.job = job
        self.runDirectory = run
        self.progress = progress
        DNNLRuntime.setThreadCount(job.runtime.blasThreads)
        reader = try DatasetReader(path: job.data.path)
        let rank = communicator?.rank ?? 0
        dataSHA256 = rank == 0 ? try SourceFile.sha256(ofFileAt: job.data.path) : nil
        let ranks = communicator?.size ?? 1
        plan = try TrainingPlan(job: job, reader: reader, ranks: ranks)
        shard = try TrainingShard(
            reader: reader, rank: rank, ranks: ranks, seed: job.training.seed,
            globalBatch: job.training.batchSize, mode: job.training.shuffle)
        testShard = try reader.read(split: DatasetLayout.test, rank: rank, of: ranks)
        validationShard =
            plan.hasValidationSplit ? try reader.read(split: DatasetLayout.validation, rank: rank, of: ranks) : nil
        network = job.makeNetwork(featureShape: plan.featureShape, classes: plan.classes)
        optimizer = job.makeOptimizer(parameterCount: network.store.parameterCount)
        weighting = job.makeExitWeighting()
        classGroups = plan.givenClassGroups
        objective = ExitObjective(network: network, classGroups: classGroups)
        objective.labelSmoothing = job.training.labelSmoothing
        objective.distillation = job.method.distillation.map {
            ExitObjective.SelfDistillation(weight: $0.weight, temperature: $0.temperature)
        }
        hooks = job.makeTrainingHooks(classes: plan.classes, exits: network.exitCount)
        network.reserve(maxBatch: shard.maxLocalBatch)
        objective.reserve(maxBatch: shard.maxLocalBatch)
        network.initialize(seed: job.training.seed)
        strategy = DataParallelStrategy(
            communicator: communicator, gradients: network.store.gradients, runtime: job.runtime)
        strategy.synchronizeBatchNorm(of: network, job.training.syncBatchnorm)
        if rank == 0,
            let warning = PrimitiveImplementation.referenceWarning(
                network.primitiveImplementations(batch: shard.maxLocalBatch))
        {
            progress.say("warning: \(warning)")
        }
        if resume && job.method.name == .l2w {
            // Resuming would restart the weight network silently: refuse instead.
            throw TrainingError(
                "--resume: l2w's weight network is not stored in checkpoints yet, so an l2w run cannot resume; train it again from the start"
            )
        }
        if resume && rank == 0 { try restoreNewestCheckpoint() }
        if rank == 0, let warning = shard.blockLayoutWarning { progress.say("warning: \(warning)") }
        if rank == 0 { for warning in plan.warnings { progress.say("warning: \(warning)") } }
    }

    deinit {
        try? reader.close()
    }

    /// Whether every epoch of the job is trained (a resumed run that has nothing left to train).
    public var hasTrainedEveryEpoch: Bool { epoch >= job.training.epochs && resumePoint.step == 0 }

    func setClassGroups(_ groups: ClassGroups) {
        classGroups = groups
        objective.classGroups = groups
    }

    private func restoreNewestCheckpoint() throws {
        guard let newest = runDirectory.newestCheckpoint else {
            throw CheckpointError(
                file: runDirectory.lastCheckpoint, "--resume: no checkpoint in \(runDirectory.checkpointFolder)")
        }
        let checkpoint = try Checkpoint.read(from: newest)
        var saved = checkpoint.job.withResumableSettings(of: job)
        let current = job
        // The data may have moved: the same content (by SHA-256) under another path is the same data.
        // Checkpoints of older versions store the path as given, relative to where training ran.
        if JobOverrides.resolved(saved.data.path) == current.data.path { saved.data.path = current.data.path }
        if saved.data.path != current.data.path, let stored = checkpoint.dataSHA256, stored == dataSHA256 {
            saved.data.path = current.data.path
        }
        guard saved == current else {
            let differences = (try? JobLoader.differences(from: saved, to: current)) ?? []
            throw CheckpointError(
                file: newest,
                "--resume: the checkpoint was written by a different job (\(differences.prefix(3).joined(separator: "; "))\(differences.count > 3 ? "; ..." : "")); only training.epochs, runtime and logging may change"
            )
        }
        guard checkpoint.epoch <= job.training.epochs else {
            throw CheckpointError(
                file: newest,
                "--resume: the run has trained \(checkpoint.epoch) epochs, more than training.epochs \(job.training.epochs); a finished run is not trained back"
            )
        }
        try checkpoint.restore(into: network, optimizer: optimizer, source: newest)
        if let groups = checkpoint.classGroups { setClassGroups(groups) }
        if checkpoint.stepInEpoch > 0 {
            // With training.shuffle: local the steps of an epoch depend on the number of ranks.
            guard checkpoint.stepInEpoch < shard.stepsPerEpoch,
                checkpoint.epochRanks == (strategy.communicator?.size ?? 1)
            else {
                throw CheckpointError(
                    file: newest,
                    "--resume: stopped at step \(checkpoint.stepInEpoch) of an epoch on \(checkpoint.epochRanks ?? 0) ranks; resume it on as many ranks (this run has \(strategy.communicator?.size ?? 1), \(shard.stepsPerEpoch) steps per epoch)"
                )
            }
        }
        epoch = checkpoint.epoch
        globalStep = checkpoint.globalStep
        resumePoint = (checkpoint.stepInEpoch, checkpoint.partialEpoch)
        progress.say("resumed from \(newest) at epoch \(epoch), step \(globalStep)")
    }

    /// Makes every rank start from rank 0's parameters, buffers, optimizer state and position.
    public func synchronize() throws {
        try strategy.broadcast(network.store.parameters)
        try strategy.broadcast(network.store.buffers)
        for (_, state) in optimizer.stateBuffers { try strategy.broadcast(state) }
        var counters = [Int64(epoch), Int64(globalStep), Int64(optimizer.stepCount), Int64(resumePoint.step)]
        try strategy.broadcast(&counters)
        epoch = Int(counters[0])
        globalStep = Int(counters[1])
        optimizer.stepCount = Int(counters[2])
        // The partial epoch's statistics stay on rank 0: summed over ranks at the epoch's end, they count once.
        resumePoint.step = Int(counters[3])
        for hook in hooks { try hook.synchronized(self) }
    }

    /// Runs `body` on every rank; a failure anywhere stops all ranks together.
    func together<R>(_ body: () throws -> R) throws -> R {
        strategy.position = (globalStep, epoch + 1)
        return try strategy.together(body)
    }

    /// Trains the remaining epochs, writes checkpoints and metrics, and evaluates the result.
    @discardableResult
    public func run() throws -> RoutingStatistics {
        let isRoot = strategy.isRoot
        // The first epoch's rows are read (and checked) before anything is written, so a run
        // refused for its data leaves no run folder behind.
        if epoch < job.training.epochs {
            try together { try shard.prepare(epoch: epoch) }
            startupReadSeconds = shard.takeReadSeconds()
        }
        try together {
            if isRoot {
                // A failure here names its file and removes what the run made of its folder.
                runLock = try runDirectory.begin(jobYAML: try JobLoader.yaml(job), keepingMetricsUpTo: epoch)
                if job.logging.tensorboard { tensorBoard = try TensorBoardLog(folder: runDirectory.tensorBoardFolder) }
            }
        }
        let log = MetricsLog(path: runDirectory.metricsFile)
        var best = BestCheckpoint(metric: job.training.keepBest, run: runDirectory, resumed: epoch > 0)
        let started = Date()
        let firstEpoch = epoch
        // keep_best alone needs only the validation split scored, every epoch.
        let evaluationEvery = job.eval.everyEpochs > 0 ? job.eval.everyEpochs : (job.training.keepBest != nil ? 1 : 0)
        var final: (test: RoutingStatistics?, validation: RoutingStatistics?)?
        var stop: Int32?
        while epoch < job.training.epochs {
            var metrics = try trainEpoch(stop: &stop)
            epoch += 1
            metrics.epoch = epoch
            let reviewed = review?.epochs.contains(epoch) == true && epoch < job.training.epochs
            if epoch == job.training.epochs {
                // Evaluated before the last checkpoint is written, which then holds what was measured.
                final = try routingStatistics(test: true, validation: true)
            } else if (evaluationEvery > 0 && epoch % evaluationEvery == 0 || reviewed) && stop == nil {
                // (Asked to stop, the checkpoint comes first: the grace before SIGKILL is short.)
                (metrics.evaluation, metrics.validation) = try routingStatistics(
                    test: job.eval.everyEpochs > 0 || (reviewed && !plan.hasValidationSplit), validation: true)
            }
            let secondsLeft =
                Date().timeIntervalSince(started) / Double(epoch - firstEpoch) * Double(job.training.epochs - epoch)
            progress.epoch(metrics, epochs: job.training.epochs, secondsLeft: secondsLeft)
            try together {
                try checkFiniteState(epochNumber: epoch)
                if isRoot {
                    try log.append(metrics)
                    try recordEpoch(metrics, test: final?.test, validation: final?.validation)
                    if epoch % job.training.checkpointEvery == 0 || epoch == job.training.epochs || stop != nil {
                        try writeCheckpoint()
                    }
                    if let validation = metrics.validation {
                        try best.offer(validation, epoch: epoch, write: writeCheckpoint(to:))
                    }
                }
            }
            if let stop, epoch < job.training.epochs {
                // Asked to stop at the epoch's last step: the epoch's checkpoint is the place to resume.
                throw interrupted(by: stop, checkpoint: runDirectory.lastCheckpoint)
            }
            if reviewed, let review, let scores = metrics.validation ?? metrics.evaluation {
                try endIfReviewSaysSo(review, scores: scores, onValidation: metrics.validation != nil)
            }
        }
        // A run resumed after its last epoch is evaluated again (with the same result).
        let (test, validation) = try final ?? routingStatistics(test: true, validation: true)
        try together {
            if isRoot {
                try AtomicFile.write(
                    try provenance(split: DatasetLayout.test).json(test!), to: runDirectory.evaluationFile)
                if let validation {
                    try AtomicFile.write(
                        try provenance(split: DatasetLayout.validation).json(validation),
                        to: runDirectory.validationFile)
                    try best.offer(validation, epoch: epoch, write: writeCheckpoint(to:))
                }
            }
        }
        return test!
    }

    /// What the final evaluation measured (rank 0): the last checkpoint, which holds that model.
    private func provenance(split: DatasetSplitName) -> EvaluationProvenance {
        EvaluationProvenance(
            checkpoint: JobOverrides.resolved(runDirectory.lastCheckpoint), epoch: epoch,
            batchNormStatistics: evaluatedBuffers?.epoch == epoch ? "re-estimated" : "training", data: job.data.path,
            dataSHA256: dataSHA256 ?? "", split: split)
    }

    /// The epoch's means and held-out metrics in the TensorBoard file, at the epoch's last step.
    private func recordEpoch(_ metrics: EpochMetrics, test: RoutingStatistics?, validation: RoutingStatistics?) throws {
        guard let tensorBoard else { return }
        var values: [(tag: String, value: Double)] = [("epoch/samples_per_second", metrics.samplesPerSecond)]
        for e in metrics.loss.indices {
            values += [
                ("epoch/loss_exit\(e + 1)", metrics.loss[e]), ("epoch/gate_exit\(e + 1)", metrics.gateMean[e]),
                ("epoch/train_accuracy_exit\(e + 1)", metrics.trainAccuracy[e]),
            ]
        }
        for (split, statistics) in [
            ("test", metrics.evaluation ?? test), ("validation", metrics.validation ?? validation),
        ] {
            guard let statistics else { continue }
            values += [
                ("\(split)/accuracy", statistics.accuracy), ("\(split)/macro_f1", statistics.macroF1),
                ("\(split)/relative_cost", statistics.relativeCost),
            ]
            for (e, fraction) in statistics.exitFractions.enumerated() {
                values.append(("\(split)/exit\(e + 1)_fraction", fraction))
            }
        }
        tensorBoard.scalars(values, step: metrics.globalStep)
        try tensorBoard.flush()
    }

    /// One step's loss and mean gate per exit (rank 0's part of the batch), learning rate and samples/s.
    private func recordStep(
        _ statistics: ExitObjective.Statistics, batch: Int, globalCount: Int, learningRate: Float, started: DispatchTime
    ) {
        guard let tensorBoard else { return }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
        let n = Double(max(batch, 1))
        var values: [(tag: String, value: Double)] = [
            ("train/learning_rate", Double(learningRate)),
            ("train/samples_per_second", Double(globalCount) / max(seconds, 1e-9)),
        ]
        for e in statistics.loss.indices {
            values += [(stepTags.loss[e], statistics.loss[e] / n), (stepTags.gate[e], statistics.gate[e] / n)]
        }
        tensorBoard.scalars(values, step: globalStep + 1)
    }

    /// What stays fixed over the steps of one epoch.
    struct EpochSetup {
        let phase: TrainingPhase
        /// Parameter ranges the optimizer updates (nil: all of them).
        let trainable: [Range<Int>]?
        let weighting: ExitWeighting
        let adjustment: ExitObjective.WeightAdjustment
        let randomKey: UInt64
        let learningRate: (Int) -> Float
        let firstScheduleStep: Int
    }

    /// What the steps of one epoch add up: statistics over this rank's samples, and samples
    /// over all ranks.
    struct EpochTally {
        var statistics: ExitObjective.Statistics
        var localSamples = 0
        var samples = 0
        var learningRate: Float = 0

        init(statistics: ExitObjective.Statistics) { self.statistics = statistics }

        /// The tally a mid-epoch checkpoint stored (`Checkpoint.partialEpoch`).
        init(partial: [Double], exits: Int) {
            statistics = ExitObjective.Statistics(flattened: Array(partial.dropLast(2)))
            samples = Int(partial[partial.count - 2])
            localSamples = samples
            learningRate = Float(partial[partial.count - 1])
        }
    }

    /// One pass over the training split (the rest of it, when resuming mid-epoch); returns
    /// the epoch's metrics, summed over ranks. After every step the ranks agree on whether a
    /// stop signal arrived: mid-epoch that writes `interrupted.h5` and throws
    /// `TrainingInterrupted`; at the epoch's last step it sets `stop` for the caller.
    func trainEpoch(stop: inout Int32?) throws -> EpochMetrics {
        let started = Date()
        let firstStep = resumePoint.step
        let setup = beginEpoch(resuming: firstStep > 0)
        try together { try shard.prepare(epoch: epoch) }
        // The next epoch's rows are read while this one trains; HDF5 is the loop's again after it.
        if epoch + 1 < job.training.epochs { shard.readAhead(epoch: epoch + 1) }
        defer { shard.settle() }
        var tally = EpochTally(statistics: ExitObjective.Statistics(exits: network.exitCount))
        if firstStep > 0, let partial = resumePoint.partial {
            tally = EpochTally(partial: partial, exits: network.exitCount)
        }
        resumePoint = (0, nil)
        let steps = shard.stepsPerEpoch
        let stopsWithin = hooks.allSatisfy { $0.allowsStopWithin(self, epoch: epoch) }
        try withBatchBuffers(network.maxBatch, featureCount: shard.data.featureCount) { x, y, ids in
            for step in firstStep..<steps {
                try trainStep(step, setup: setup, buffers: (x, y, ids), tally: &tally)
                globalStep += 1
                afterEachStep?()
                if stop == nil, let signal = try strategy.agreedStopSignal(listening: !job.runtime.stopSignals.isEmpty)
                {
                    if step + 1 < steps && stopsWithin { try interrupt(by: signal, atStep: step + 1, tally: tally) }
                    stop = signal
                }
                if progress.enabled {
                    let elapsed = Date().timeIntervalSince(started)
                    progress.step(
                        epoch: epoch + 1, epochs: job.training.epochs, step: step + 1, steps: steps,
                        loss: tally.statistics.loss.map { $0 / Double(max(1, tally.localSamples)) },
                        samplesPerSecond: Double(tally.samples) / elapsed,
                        secondsLeft: elapsed / Double(step + 1 - firstStep) * Double(steps - step - 1))
                }
            }
        }
        shard.settle()
        // The epoch's reads ride along with its statistics: one sum over ranks, as before.
        let reads = shard.takeReads()
        let startup = startupReadSeconds
        startupReadSeconds = nil
        var totals =
            tally.statistics.flattened + [
                Double(reads.bytesRead), Double(reads.bytesDecompressed), reads.seconds, startup ?? 0,
            ]
        strategy.position = (globalStep, epoch + 1)
        try strategy.sum(&totals)
        let readTotals = Array(totals.suffix(4))
        let summed = ExitObjective.Statistics(flattened: Array(totals.dropLast(4)))
        for hook in hooks { try hook.epochTrained(self, epoch: epoch) }
        let n = Double(max(tally.samples, 1))
        let seconds = Date().timeIntervalSince(started)
        var metrics = EpochMetrics(
            epoch: epoch, globalStep: globalStep, learningRate: Double(tally.learningRate),
            loss: summed.loss.map { $0 / n }, weightedLoss: summed.weightedLoss.map { $0 / n },
            gateMean: summed.gate.map { $0 / n }, trainAccuracy: summed.correct.map { $0 / n },
            samples: tally.samples, seconds: seconds, samplesPerSecond: n / seconds, evaluation: nil)
        metrics.dataBytesRead = Int64(readTotals[0])
        metrics.dataBytesDecompressed = Int64(readTotals[1])
        metrics.dataStallSeconds = readTotals[2] / Double(strategy.ranks)
        if startup != nil { metrics.dataStartupSeconds = readTotals[3] / Double(strategy.ranks) }
        return metrics
    }

    /// The phase, weighting, schedule and random key of the current epoch; at a phase's first
    /// epoch, restarts the optimizer if the phase asks and says so (not again when `resuming`
    /// mid-epoch: the stored optimizer state is already the restarted one).
    private func beginEpoch(resuming: Bool) -> EpochSetup {
        let phase = plan.phase(at: epoch)
        if epoch == phase.epochs.lowerBound && !resuming {
            if phase.restartsOptimizer && epoch > 0 { optimizer.reset() }
            if plan.phases.count > 1 {
                progress.say(
                    "epoch \(epoch + 1): \(phase.name) (epochs \(phase.epochs.lowerBound + 1)-\(phase.epochs.upperBound))"
                )
            }
        }
        let schedule = learningRateSchedule(at: epoch)
        return EpochSetup(
            phase: phase,
            trainable: phase.scope == .everything(exits: network.exitCount)
                ? nil : network.trainableRanges(phase.scope),
            weighting: phase.fixedWeights.map { FixedExitWeights($0) } ?? weighting,
            adjustment: ExitObjective.WeightAdjustment(
                exitScale: job.method.anneal?.factors(epoch: epoch), leak: job.method.leak,
                normalized: job.method.normalizeWeights, spread: job.method.effectiveSpread),
            randomKey: DropoutKernels.mix64(job.training.seed ^ DropoutKernels.mix64(UInt64(epoch) &+ 0xD120_9047)),
            learningRate: schedule.rate, firstScheduleStep: schedule.firstStep)
    }

    typealias BatchBuffers = (
        x: UnsafeMutableBufferPointer<Float>, y: UnsafeMutableBufferPointer<Int32>,
        ids: UnsafeMutableBufferPointer<Int64>
    )

    /// One optimizer step: this rank's part of global batch `step`, forward, gates and loss,
    /// backward, the gradient sum over ranks, and the update (or the non-finite policy).
    func trainStep(_ step: Int, setup: EpochSetup, buffers: BatchBuffers, tally: inout EpochTally) throws {
        let started = DispatchTime.now()
        let (x, y, ids) = buffers
        let scope = setup.phase.scope
        strategy.position = (globalStep + 1, epoch + 1)
        let positions = shard.positions(step: step)
        let globalCount = shard.globalCount(step: step)
        tally.learningRate = setup.learningRate(globalStep - setup.firstScheduleStep)
        shard.data.gather(positions, features: x, labels: y, sampleIDs: ids)
        let batch = positions.count
        if job.augmentation.isActive { augment(x, sampleIDs: ids, batch: batch, randomKey: setup.randomKey) }
        let context = ForwardContext(
            mode: .training, sampleIDs: UnsafeBufferPointer(rebasing: ids[0..<batch]), randomKey: setup.randomKey)
        network.forward(UnsafeBufferPointer(x), batch: batch, context: context, scope: scope)
        SignalDrill.reached(.step)
        let statistics = objective.lossAndGradients(
            network: network, labels: UnsafeBufferPointer(y), batch: batch, weighting: setup.weighting,
            globalBatch: globalCount, adjustment: setup.adjustment, activeExits: scope.exitLimit)
        if !hooks.isEmpty {
            let predictions = objective.lastPredictions(
                labels: UnsafeBufferPointer(y), batch: batch, exits: scope.exitLimit)
            for hook in hooks { hook.stepTrained(self, epoch: epoch, predictions: predictions) }
        }
        network.backward(
            input: UnsafeBufferPointer(x), batch: batch, scope: scope,
            gradientEquilibrium: job.method.gradientEquilibrium, gradientsReady: strategy.gradientsReady)
        try strategy.reduceGradients()
        // Every rank holds the same reduced gradients, so every rank decides alike.
        if Reductions.sum(UnsafeBufferPointer(network.store.gradients)).isFinite {
            optimizer.step(network.store, learningRate: tally.learningRate, ranges: setup.trainable)
            let finished = FinishedStep(
                x: UnsafeBufferPointer(x), labels: UnsafeBufferPointer(rebasing: y[0..<batch]),
                sampleIDs: UnsafeBufferPointer(rebasing: ids[0..<batch]),
                batch: batch, globalCount: globalCount, randomKey: setup.randomKey, scope: scope)
            // BatchNorm's running statistics never feed back into a training step's gradients,
            // so a diverged run shows there first; every rank holds the same ones when they are
            // synchronised (otherwise the epoch's end checks them, all ranks together).
            if strategy.ranks == 1 || job.training.syncBatchnorm,
                let name = network.store.firstNonFiniteTensor(parameters: false)
            {
                throw AgreedFailure(
                    underlying: diverged(name, step: globalStep + 1, epoch: epoch + 1), reportingRank: 0,
                    isReporter: strategy.isRoot)
            }
            for hook in hooks { try hook.stepFinished(self, step: finished) }
            tally.statistics += statistics
            tally.localSamples += batch
            tally.samples += globalCount
            recordStep(
                statistics, batch: batch, globalCount: globalCount, learningRate: tally.learningRate, started: started)
        } else if job.training.skipNonfiniteSteps {
            progress.say("warning: skipped step \(globalStep + 1) (epoch \(epoch + 1)): non-finite gradient")
        } else {
            throw AgreedFailure(
                underlying: TrainingError(
                    "non-finite gradient at step \(globalStep + 1) (epoch \(epoch + 1)); lower optimizer.lr, check the data, or set training.skip_nonfinite_steps"
                ),
                reportingRank: 0, isReporter: strategy.isRoot)
        }
    }

    /// Fails when the model's parameters or buffers, or the buffers an evaluation re-estimated,
    /// hold a NaN or an infinity: checked by every rank before anything of the epoch is written,
    /// so no checkpoint of a diverged model is ever made.
    /// - Parameter epochNumber: the 1-based epoch the last step belongs to, for the message.
    func checkFiniteState(epochNumber: Int) throws {
        if let name = network.store.firstNonFiniteTensor() {
            throw diverged(name, step: globalStep, epoch: epochNumber)
        }
        if let (evaluated, values) = evaluatedBuffers, evaluated == epoch,
            let name = values.withUnsafeBufferPointer({
                ParameterStore.firstNonFinite($0, network.store.bufferSlots)
            })
        {
            throw TrainingError(
                "\(name) re-estimated for evaluation holds a non-finite value after epoch \(epoch): the model diverged; lower optimizer.lr (now \(job.optimizer.lr)) and train again"
            )
        }
    }

    private func diverged(_ name: String, step: Int, epoch: Int) -> TrainingError {
        TrainingError(
            "\(name) holds a non-finite value after step \(step) (epoch \(epoch)): training diverged; lower optimizer.lr (now \(job.optimizer.lr)) and train again, or resume from an earlier checkpoint"
        )
    }

    /// The learning-rate schedule of the phase segment `epoch` lies in: a restarting phase
    /// begins a new schedule that runs until the next restarting phase.
    func learningRateSchedule(at epoch: Int) -> (rate: (Int) -> Float, firstStep: Int) {
        let phases = plan.phases
        let start =
            phases.filter { $0.restartsOptimizer && $0.epochs.lowerBound <= epoch }.map(\.epochs.lowerBound).max() ?? 0
        let end =
            phases.filter { $0.restartsOptimizer && $0.epochs.lowerBound > epoch }.map(\.epochs.lowerBound).min()
            ?? job.training.epochs
        let schedule = LearningRateSchedule(
            section: job.schedule, baseRate: job.optimizer.lr, stepsPerEpoch: shard.stepsPerEpoch, epochs: end - start)
        return ({ schedule.rate(atStep: $0) }, start * shard.stepsPerEpoch)
    }

    /// Shifts and flips each training image of the batch in place, from (seed, epoch, sample id).
    private func augment(
        _ x: UnsafeMutableBufferPointer<Float>, sampleIDs: UnsafeMutableBufferPointer<Int64>, batch: Int,
        randomKey: UInt64
    ) {
        let shape = shard.featureShape
        let size = shape.reduce(1, *)
        withUnsafeTemporaryAllocation(of: Float.self, capacity: size) { scratch in
            for i in 0..<batch {
                let image = x.baseAddress! + i * size
                let draw = ImageAugmentation.draw(
                    key: randomKey ^ 0xA067_3E27, sampleID: sampleIDs[i],
                    padding: job.augmentation.cropPadding, flip: job.augmentation.horizontalFlip)
                guard draw.dy != 0 || draw.dx != 0 || draw.flip else { continue }
                scratch.baseAddress!.update(from: image, count: size)
                ImageAugmentation.shiftAndFlip(
                    UnsafePointer(scratch.baseAddress!), into: image, channels: shape[0], height: shape[1],
                    width: shape[2], dy: draw.dy, dx: draw.dx, flip: draw.flip)
            }
        }
    }

    /// Rank 0 asks `review` whether training goes on after this epoch and every rank follows;
    /// a stop writes this epoch's checkpoint (if the cadence did not) and ends training.
    private func endIfReviewSaysSo(_ review: EpochReview, scores: RoutingStatistics, onValidation: Bool) throws {
        var goesOn: [Int64] = [1]
        try together {
            if strategy.isRoot { goesOn[0] = try review.decide(epoch, scores, onValidation) ? 1 : 0 }
        }
        try strategy.broadcast(&goesOn)
        guard goesOn[0] == 0 else { return }
        try together {
            if strategy.isRoot && epoch % job.training.checkpointEvery != 0 { try writeCheckpoint() }
        }
        try? tensorBoard?.flush()
        throw TrainingStoppedEarly(epoch: epoch, checkpoint: runDirectory.lastCheckpoint)
    }

    func writeCheckpoint() throws {
        let path = runDirectory.checkpoint(epoch: epoch)
        try writeCheckpoint(to: path)
        try AtomicFile.link(path, to: runDirectory.lastCheckpoint)
        // A whole epoch past a mid-epoch stop makes its checkpoint stale.
        unlink(runDirectory.interruptedCheckpoint)
    }

    /// Stops every rank at `step` of the current epoch: the epoch's statistics so far are
    /// summed, rank 0 writes `interrupted.h5` (a second signal meanwhile changes nothing: the
    /// file is written whole or not at all), and every rank throws `TrainingInterrupted`.
    private func interrupt(by signal: Int32, atStep step: Int, tally: EpochTally) throws -> Never {
        shard.settle()
        var totals = tally.statistics.flattened
        strategy.position = (globalStep, epoch + 1)
        try strategy.sum(&totals)
        let path = runDirectory.interruptedCheckpoint
        try together {
            try checkFiniteState(epochNumber: epoch + 1)
            if strategy.isRoot {
                var checkpoint = makeCheckpoint(evaluated: false)
                checkpoint.stepInEpoch = step
                checkpoint.epochRanks = strategy.communicator?.size ?? 1
                checkpoint.partialEpoch = totals + [Double(tally.samples), Double(tally.learningRate)]
                try checkpoint.write(to: path)
            }
        }
        try? tensorBoard?.flush()
        throw interrupted(by: signal, checkpoint: path, step: step)
    }

    private func interrupted(by signal: Int32, checkpoint: String, step: Int = 0) -> TrainingInterrupted {
        TrainingInterrupted(
            signal: signal, checkpoint: checkpoint, epoch: step > 0 ? epoch : epoch - 1,
            stepInEpoch: step > 0 ? step : shard.stepsPerEpoch, isReporter: strategy.isRoot)
    }

    func writeCheckpoint(to path: String) throws {
        try makeCheckpoint(evaluated: true).write(to: path)
    }

    /// The run's state now; `evaluated`: with this epoch's re-estimated statistics as the model's, if any.
    private func makeCheckpoint(evaluated: Bool) -> Checkpoint {
        Checkpoint(
            job: job, epoch: epoch, globalStep: globalStep, featureShape: shard.featureShape,
            classNames: reader.classNames, network: network, optimizer: optimizer, classGroups: classGroups,
            evaluatedBuffers: evaluated ? evaluatedBuffers.flatMap { $0.epoch == epoch ? $0.values : nil } : nil,
            dataSHA256: dataSHA256)
    }
}

/// Training cannot go on.
public struct TrainingError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
