import CGTCheckpoint
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
/// The loop alone: every rank computes forward, gates and gradients for its part of each
/// global batch; the gradients are summed over ranks in fixed buckets (`DataParallelStrategy`),
/// and every rank takes the same optimizer step. What goes to disk when, and how a run comes
/// back, is the `CheckpointConnector`'s; what a method adds, its hooks'; what rank 0 records,
/// the `TrainingRecorder`'s. Evaluation is sharded over ranks and reduced. Nothing here runs a
/// collective while another rank may have failed: local work that can fail runs inside
/// `strategy.together`.
public final class Trainer {
    public let job: Job
    public let network: EarlyExitNetwork
    public let optimizer: Optimizer
    let plan: TrainingPlan
    let strategy: DataParallelStrategy
    let weighting: ExitWeighting
    let objective: ExitObjective
    let hooks: [TrainingHook]
    /// What the hooks may see of the run, made once: it is the same at every step.
    let hookContext: HookContext
    let checkpoints: CheckpointConnector
    /// The data file, this rank's share of the training split, and of the held-out splits:
    /// held for the run when a share fits one evaluation block, else read block by block at
    /// each evaluation (`SplitShare`).
    let reader: DatasetReader
    let shard: TrainingShard
    let testShard: SplitShare
    /// This rank's share of the validation split, if the data has one.
    let validationShard: SplitShare?
    /// ClassyNet's groups, once given or chosen (nil before, and for every other method).
    public private(set) var classGroups: ClassGroups?
    var progress: ProgressReporter
    /// Rank 0's metrics and TensorBoard files, from the run's start.
    private var recorder: TrainingRecorder?
    /// Runs after every training step on every rank: a grid uses it to serve the other groups'
    /// requests for their next trial (`SharedCounter.serve`).
    public var afterEachStep: (() -> Void)?
    /// Asked after chosen epochs whether training goes on: a grid's successive halving stops
    /// trials this way (`EpochReview`).
    public var review: EpochReview?
    /// Epochs completed and optimizer steps taken.
    public private(set) var epoch = 0
    public private(set) var globalStep = 0
    /// Where a stop signal left the epoch being resumed (rank 0 holds its statistics: summed
    /// over ranks at the epoch's end, they count once), until that epoch begins.
    private var resumePoint: (step: Int, partial: PartialEpoch?) = (0, nil)
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
        self.progress = progress
        DNNLRuntime.setThreadCount(job.runtime.blasThreads)
        reader = try DatasetReader(path: job.data.path)
        let rank = communicator?.rank ?? 0
        let ranks = communicator?.size ?? 1
        plan = try TrainingPlan(job: job, reader: reader, ranks: ranks)
        shard = try TrainingShard(
            reader: reader, rank: rank, ranks: ranks, seed: job.training.seed,
            globalBatch: job.training.batchSize, mode: job.training.shuffle)
        shard.adopt(
            try ShardResidency.choose(
                job.training.shuffleBuffer ?? .automatic, mode: job.training.shuffle, pieceRows: shard.pieceRows,
                featureCount: reader.featureCount, ranksPerNode: ShardResidency.ranksPerNode(ranks: ranks)),
            resumed: nil)
        let heldOut = [DatasetSplitName.test] + (plan.hasValidationSplit ? [.validation] : [])
        let sizes = reader.splitSizes
        let largestShare = heldOut.map { ((sizes[$0] ?? 0) + ranks - 1) / ranks }.max() ?? 1
        let blockRows = EvaluationBlock.rows(
            featureCount: plan.featureShape.reduce(1, *), batchSize: max(1, min(job.eval.batchSize, largestShare)))
        testShard = try SplitShare.of(.test, reader: reader, rank: rank, ranks: ranks, blockRows: blockRows)
        validationShard =
            plan.hasValidationSplit
            ? try SplitShare.of(.validation, reader: reader, rank: rank, ranks: ranks, blockRows: blockRows) : nil
        network = job.makeNetwork(featureShape: plan.featureShape, classes: plan.classes)
        optimizer = job.makeOptimizer(parameterCount: network.store.parameterCount)
        let method = job.makeMethodParts(network: network, classes: plan.classes)
        weighting = method.weighting
        hooks = method.hooks
        classGroups = plan.givenClassGroups
        objective = ExitObjective(network: network, classGroups: classGroups)
        objective.labelSmoothing = job.training.labelSmoothing
        objective.distillation = job.method.distillation.map {
            ExitObjective.SelfDistillation(weight: $0.weight, temperature: $0.temperature)
        }
        network.reserve(maxBatch: shard.maxLocalBatch)
        objective.reserve(maxBatch: shard.maxLocalBatch)
        network.initialize(seed: job.training.seed)
        strategy = DataParallelStrategy(
            communicator: communicator, gradients: network.store.gradients, runtime: job.runtime)
        strategy.synchronizeBatchNorm(of: network, job.training.syncBatchnorm)
        hookContext = HookContext(network: network, strategy: strategy, say: { [progress] in progress.say($0) })
        checkpoints = CheckpointConnector(
            job: job, run: run, network: network, optimizer: optimizer, hooks: hooks,
            featureShape: shard.featureShape, classNames: reader.classNames,
            dataSHA256: rank == 0 ? try SourceFile.sha256(ofFileAt: job.data.path) : nil)
        if rank == 0,
            let warning = PrimitiveImplementation.referenceWarning(
                network.primitiveImplementations(batch: shard.maxLocalBatch))
        {
            progress.say("warning: \(warning)")
        }
        if resume && rank == 0 {
            let (position, partial, file) = try checkpoints.restoreNewest(
                ranks: ranks, stepsPerEpoch: shard.stepsPerEpoch)
            // (ClassyNet's groups reach the loop through its hook, in `synchronize`.)
            epoch = position.epoch
            globalStep = position.globalStep
            resumePoint = (partial?.step ?? 0, partial)
            if let partial {
                shard.adopt(shard.residency, resumed: (epoch, ShardResidency(bufferRows: partial.bufferRows)))
            }
            progress.say(
                "resumed from \(file) at epoch \(epoch), step \(globalStep)")
        }
        if rank == 0 { for warning in plan.warnings { progress.say("warning: \(warning)") } }
    }

    deinit {
        // The read thread may still read ahead: it ends before the file closes.
        shard.readThread.stop()
        try? reader.close()
    }

    /// The run folder the trainer writes.
    public var runDirectory: RunDirectory { checkpoints.run }

    /// Whether every epoch of the job is trained (a resumed run that has nothing left to train).
    public var hasTrainedEveryEpoch: Bool { epoch >= job.training.epochs && resumePoint.step == 0 }

    private func setClassGroups(_ groups: ClassGroups) {
        classGroups = groups
        objective.classGroups = groups
    }

    /// Takes the class groups a hook chose.
    private func adoptChosenGroups() {
        if let groups = hooks.lazy.compactMap(\.chosenGroups).first, groups != classGroups { setClassGroups(groups) }
    }

    /// Where training stands, for the checkpoint connector.
    private var position: CheckpointConnector.Position {
        CheckpointConnector.Position(epoch: epoch, globalStep: globalStep, classGroups: classGroups)
    }

    /// Makes every rank start from rank 0's parameters, buffers, optimizer state and position.
    public func synchronize() throws {
        try strategy.broadcast(network.store.parameters)
        try strategy.broadcast(network.store.buffers)
        for (_, state) in optimizer.stateBuffers { try strategy.broadcast(state) }
        var counters = [
            Int64(epoch), Int64(globalStep), Int64(optimizer.stepCount), Int64(resumePoint.step),
            Int64(shard.residency.bufferRows), Int64(shard.residency(of: epoch).bufferRows),
        ]
        try strategy.broadcast(&counters)
        epoch = Int(counters[0])
        globalStep = Int(counters[1])
        optimizer.stepCount = Int(counters[2])
        // The partial epoch's statistics stay on rank 0: summed over ranks at the epoch's end, they count once.
        resumePoint.step = Int(counters[3])
        // Every rank holds or streams as rank 0 decided (and the resumed epoch as it was trained).
        shard.adopt(
            ShardResidency(bufferRows: Int(counters[4])),
            resumed: resumePoint.step > 0 ? (epoch, ShardResidency(bufferRows: Int(counters[5]))) : nil)
        // The hooks' collectives are the loop's, watched at its position.
        strategy.position = (globalStep, epoch + 1)
        for hook in hooks { try hook.synchronized(hookContext) }
        adoptChosenGroups()
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
        if isRoot && epoch < job.training.epochs {
            progress.say(shard.residencyLine(epoch: epoch))
            for warning in [shard.blockLayoutWarning, shard.streamingWarning].compactMap({ $0 }) {
                progress.say("warning: \(warning)")
            }
        }
        // The first epoch's rows are read (and checked) before anything is written, so a run
        // refused for its data leaves no run folder behind.
        if epoch < job.training.epochs {
            try together { try shard.prepare(epoch: epoch) }
            startupReadSeconds = shard.takeReadSeconds()
        }
        try together {
            if isRoot {
                // A failure here names its file and removes what the run made of its folder.
                try checkpoints.begin(epoch: epoch)
                recorder = try TrainingRecorder(
                    run: runDirectory, tensorBoard: job.logging.tensorboard, exits: network.exitCount)
            }
        }
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
            try checkpoints.gatherHookState(hookContext)
            try together {
                try checkFiniteState(epochNumber: epoch)
                if isRoot {
                    try recorder?.epoch(metrics, test: final?.test, validation: final?.validation)
                    try checkpoints.epochEnded(position, validation: metrics.validation, stopping: stop != nil)
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
        // A run resumed after its last epoch gathered no hook state yet (`best.h5` may be
        // written with the final evaluation).
        if final == nil { try checkpoints.gatherHookState(hookContext) }
        try together {
            if isRoot { try checkpoints.finished(position, test: test!, validation: validation) }
        }
        return test!
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
        if firstStep > 0, let partial = resumePoint.partial { tally = EpochTally(partial) }
        resumePoint = (0, nil)
        let steps = shard.stepsPerEpoch
        let stopsWithin = hooks.allSatisfy { $0.allowsStopWithin(hookContext, epoch: epoch) }
        try withBatchBuffers(network.maxBatch, featureCount: shard.featureCount) { x, y, ids in
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
        for hook in hooks { try hook.epochTrained(hookContext, epoch: epoch) }
        adoptChosenGroups()
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
        // A streamed step reads: the ranks agree it worked before any waits for the others.
        let batch =
            shard.gatherCanFail
            ? try together { try shard.gather(step: step, features: x, labels: y, sampleIDs: ids) }
            : try shard.gather(step: step, features: x, labels: y, sampleIDs: ids)
        strategy.position = (globalStep + 1, epoch + 1)
        let globalCount = shard.globalCount(step: step)
        tally.learningRate = setup.learningRate(globalStep - setup.firstScheduleStep)
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
            for hook in hooks { hook.stepTrained(hookContext, epoch: epoch, predictions: predictions) }
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
            if !strategy.hasOtherRanks || job.training.syncBatchnorm,
                let name = network.store.firstNonFiniteTensor(parameters: false)
            {
                throw AgreedFailure(
                    underlying: diverged(name, step: globalStep + 1, epoch: epoch + 1), reportingRank: 0,
                    isReporter: strategy.isRoot)
            }
            for hook in hooks { try hook.stepFinished(hookContext, step: finished) }
            tally.statistics += statistics
            tally.localSamples += batch
            tally.samples += globalCount
            recorder?.step(
                statistics, step: globalStep + 1, batch: batch, globalCount: globalCount,
                learningRate: tally.learningRate, started: started)
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
            if strategy.isRoot { try checkpoints.stoppedEarly(position) }
        }
        recorder?.flush()
        throw TrainingStoppedEarly(epoch: epoch, checkpoint: runDirectory.lastCheckpoint)
    }

    /// Stops every rank at `step` of the current epoch: the epoch's statistics so far are
    /// summed, rank 0 writes `interrupted.h5` (a second signal meanwhile changes nothing: the
    /// file is written whole or not at all), and every rank throws `TrainingInterrupted`.
    private func interrupt(by signal: Int32, atStep step: Int, tally: EpochTally) throws -> Never {
        shard.settle()
        var totals = tally.statistics.flattened
        strategy.position = (globalStep, epoch + 1)
        try strategy.sum(&totals)
        try checkpoints.gatherHookState(hookContext)
        try together {
            try checkFiniteState(epochNumber: epoch + 1)
            if strategy.isRoot {
                try checkpoints.writeInterrupted(
                    position,
                    partial: PartialEpoch(
                        step: step, ranks: strategy.ranks, bufferRows: shard.residency(of: epoch).bufferRows,
                        statistics: ExitObjective.Statistics(flattened: totals), samples: tally.samples,
                        learningRate: tally.learningRate))
            }
        }
        recorder?.flush()
        throw interrupted(by: signal, checkpoint: runDirectory.interruptedCheckpoint, step: step)
    }

    private func interrupted(by signal: Int32, checkpoint: String, step: Int = 0) -> TrainingInterrupted {
        TrainingInterrupted(
            signal: signal, checkpoint: checkpoint, epoch: step > 0 ? epoch : epoch - 1,
            stepInEpoch: step > 0 ? step : shard.stepsPerEpoch, isReporter: strategy.isRoot)
    }
}

/// Training cannot go on.
public struct TrainingError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
