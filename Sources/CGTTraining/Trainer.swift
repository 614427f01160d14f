import CGTEvaluation
import CGTDNNL
import CGTData
import CGTJob
import CGTKernels
import CGTMPI
import CGTModel
import Foundation

/// Trains an early-exit network as a job describes, data-parallel over the ranks of a communicator.
///
/// Every rank computes forward, gates and gradients for its part of each global batch; the
/// gradients are summed over ranks in fixed buckets that overlap the backward pass, and every
/// rank takes the same optimizer step. Rank 0 writes the metrics and checkpoints; evaluation
/// is sharded over ranks and reduced. Nothing here runs a collective while another rank may
/// have failed: local work that can fail is wrapped in `Communicator.collectively`.
public final class Trainer {
    public let job: Job
    public let runDirectory: RunDirectory
    public let network: EarlyExitNetwork
    public let optimizer: Optimizer
    let communicator: Communicator?
    let weighting: ExitWeighting
    let objective: ExitObjective
    let reader: DatasetReader
    let shard: TrainingShard
    let testShard: DatasetSplit
    /// This rank's share of the validation split, if the data has one.
    let validationShard: DatasetSplit?
    let phases: [TrainingPhase]
    /// ClassyNet's groups, once given or chosen (nil before, and for every other method).
    public internal(set) var classGroups: ClassGroups?
    let gradientReducer: GradientReducer?
    let gradientsReady: ((Int) -> Void)?
    let stallWatch: StallWatch?
    var progress: ProgressReporter
    /// Runs after every training step on every rank: a grid uses it to serve the other groups'
    /// requests for their next trial (`SharedCounter.serve`).
    public var afterEachStep: (() -> Void)?
    /// Epochs completed and optimizer steps taken.
    public private(set) var epoch = 0
    public private(set) var globalStep = 0

    var rank: Int { communicator?.rank ?? 0 }
    var ranks: Int { communicator?.size ?? 1 }
    var isRoot: Bool { rank == 0 }
    var distributed: Bool { ranks > 1 }

    /// Opens this rank's data and builds the network and optimizer; on rank 0 with `resume`,
    /// reads the newest checkpoint. Local work only: call `synchronize()` on every rank next.
    public init(job: Job, run: RunDirectory, communicator: Communicator?, resume: Bool, progress: ProgressReporter) throws {
        self.job = job
        self.runDirectory = run
        self.communicator = communicator
        self.progress = progress
        DNNLRuntime.setThreadCount(job.runtime.blasThreads)
        reader = try DatasetReader(path: job.data.path)
        let rank = communicator?.rank ?? 0, ranks = communicator?.size ?? 1
        guard job.training.batchSize >= 2 * ranks else {
            throw JobError(source: "job", key: "training.batch_size", "\(job.training.batchSize) gives some of the \(ranks) ranks fewer than two samples per step")
        }
        shard = try TrainingShard(reader: reader, rank: rank, ranks: ranks, seed: job.training.seed,
                                  globalBatch: job.training.batchSize, mode: job.training.shuffle)
        guard shard.stepsPerEpoch > 0 else {
            throw JobError(source: "job", key: "training.batch_size", "the training split has \(shard.sampleCount) samples, too few for one step of \(job.training.batchSize) on \(ranks) rank(s)")
        }
        testShard = try reader.read(split: DatasetLayout.test, rank: rank, of: ranks)
        validationShard = reader.splitSizes[DatasetLayout.validation] == nil ? nil : try reader.read(split: DatasetLayout.validation, rank: rank, of: ranks)
        if job.training.keepBest != nil && validationShard == nil {
            throw JobError(source: job.data.path, key: "training.keep_best",
                           "needs a validation split in the data (cgt prepare ... --validation-fraction 0.1), so the test split plays no part in the choice")
        }
        try job.checkInput(featureShape: reader.featureShape, source: job.data.path)
        if job.augmentation.isActive && reader.featureShape.count != 3 {
            throw JobError(source: job.data.path, key: "augmentation", "needs images [channels, height, width], the data has feature_shape \(reader.featureShape)")
        }
        network = job.makeNetwork(featureShape: reader.featureShape, classes: reader.classes)
        optimizer = job.makeOptimizer(parameterCount: network.store.parameterCount)
        weighting = job.makeExitWeighting()
        phases = job.trainingPhases()
        classGroups = try job.givenClassGroups(classes: reader.classes, source: job.data.path)
        objective = ExitObjective(network: network, classGroups: classGroups)
        objective.labelSmoothing = job.training.labelSmoothing
        network.reserve(maxBatch: shard.maxLocalBatch)
        objective.reserve(maxBatch: shard.maxLocalBatch)
        network.initialize(seed: job.training.seed)
        if let communicator, communicator.size > 1 {
            let reducer = GradientReducer(communicator: communicator, gradients: network.store.gradients,
                                          bucketElements: job.runtime.bucketKib * 1024 / MemoryLayout<Float>.size,
                                          overlap: job.runtime.overlapAllreduce)
            gradientReducer = reducer
            gradientsReady = job.runtime.overlapAllreduce ? { reducer.gradientsReady(from: $0) } : nil
            stallWatch = StallWatch(limit: job.runtime.stallWarningSeconds) { waited, place, step, epoch in
                FileHandle.standardError.write(Data("cgt (rank \(rank)): warning: waited \(String(format: "%.1f", waited)) s in \(place) at step \(step) (epoch \(epoch)); another rank may have stopped\n".utf8))
            }
        } else {
            gradientReducer = nil
            gradientsReady = nil
            stallWatch = nil
        }
        setBatchNormSynchronized(job.training.syncBatchnorm)
        if resume && rank == 0 { try restoreNewestCheckpoint() }
    }

    deinit {
        stallWatch?.stop()
        try? reader.close()
    }

    /// Sums BatchNorm statistics over all ranks (or keeps them local).
    func setBatchNormSynchronized(_ synchronized: Bool) {
        let reduce: BatchNormKernels.StatisticsReducer?
        if synchronized, let communicator, communicator.size > 1 {
            reduce = { buffer in
                // A failed reduction here cannot be reported through the kernel; stop the job.
                do { try communicator.allReduceSum(buffer) } catch { communicator.abort(code: 1) }
            }
        } else {
            reduce = nil
        }
        for layer in network.batchNormLayers { layer.statisticsReducer = reduce }
    }

    private func restoreNewestCheckpoint() throws {
        guard runDirectory.hasCheckpoint else {
            throw CheckpointError(file: runDirectory.lastCheckpoint, "--resume: no checkpoint in \(runDirectory.checkpointFolder)")
        }
        let checkpoint = try Checkpoint.read(from: runDirectory.lastCheckpoint)
        var saved = checkpoint.job, current = job
        saved.training.epochs = 0
        current.training.epochs = 0
        saved.runtime = current.runtime
        guard saved == current else {
            throw CheckpointError(file: runDirectory.lastCheckpoint, "--resume: the checkpoint was written by a different job (only training.epochs and runtime may change); compare \(runDirectory.jobFile)")
        }
        try checkpoint.restore(into: network, optimizer: optimizer, source: runDirectory.lastCheckpoint)
        if let groups = checkpoint.classGroups { setClassGroups(groups) }
        epoch = checkpoint.epoch
        globalStep = checkpoint.globalStep
        progress.say("resumed from \(runDirectory.lastCheckpoint) at epoch \(epoch), step \(globalStep)")
    }

    /// Makes every rank start from rank 0's parameters, buffers, optimizer state and position.
    public func synchronize() throws {
        guard let communicator, communicator.size > 1 else { return }
        try communicator.broadcast(network.store.parameters)
        try communicator.broadcast(network.store.buffers)
        for (_, state) in optimizer.stateBuffers { try communicator.broadcast(state) }
        var counters = [Int64(epoch), Int64(globalStep), Int64(optimizer.stepCount)]
        try counters.withUnsafeMutableBytes { try communicator.broadcast($0) }
        epoch = Int(counters[0])
        globalStep = Int(counters[1])
        optimizer.stepCount = Int(counters[2])
        if job.method.name.groupsClasses { try broadcastClassGroups(communicator) }
    }

    /// Runs `body` on every rank; a failure anywhere stops all ranks together.
    func together<R>(_ body: () throws -> R) throws -> R {
        guard let communicator, communicator.size > 1 else { return try body() }
        let result: Result<R, Error>
        do { result = .success(try body()) } catch { result = .failure(error) }
        stallWatch?.enter("the agreement between ranks", step: globalStep, epoch: epoch + 1)
        defer { stallWatch?.leave() }
        return try communicator.collectively { try result.get() }
    }

    /// Trains the remaining epochs, writes checkpoints and metrics, and evaluates the result.
    @discardableResult
    public func run() throws -> RoutingStatistics {
        try together {
            if isRoot {
                try runDirectory.create()
                try writeFileAtomically(Data(try JobLoader.yaml(job).utf8), to: runDirectory.jobFile)
                try MetricsLog(path: runDirectory.metricsFile).truncate(afterEpoch: epoch)
            }
        }
        let log = MetricsLog(path: runDirectory.metricsFile)
        var best = BestCheckpoint(metric: job.training.keepBest, run: runDirectory, resumed: epoch > 0)
        let started = Date()
        let firstEpoch = epoch
        // keep_best alone needs only the validation split scored, every epoch.
        let evaluationEvery = job.eval.everyEpochs > 0 ? job.eval.everyEpochs : (job.training.keepBest != nil ? 1 : 0)
        while epoch < job.training.epochs {
            var metrics = try trainEpoch()
            epoch += 1
            metrics.epoch = epoch
            if evaluationEvery > 0 && epoch % evaluationEvery == 0 && epoch < job.training.epochs {
                (metrics.evaluation, metrics.validation) = try evaluate(test: job.eval.everyEpochs > 0, validation: true)
            }
            let secondsLeft = Date().timeIntervalSince(started) / Double(epoch - firstEpoch) * Double(job.training.epochs - epoch)
            progress.epoch(metrics, epochs: job.training.epochs, secondsLeft: secondsLeft)
            try together {
                if isRoot {
                    try log.append(metrics)
                    if epoch % job.training.checkpointEvery == 0 || epoch == job.training.epochs { try writeCheckpoint() }
                    if let validation = metrics.validation { try best.offer(validation, epoch: epoch, write: writeCheckpoint(to:)) }
                }
            }
        }
        let (test, validation) = try evaluate(test: true, validation: true)
        try together {
            if isRoot {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                try writeFileAtomically(try encoder.encode(test!), to: runDirectory.evaluationFile)
                if let validation {
                    try writeFileAtomically(try encoder.encode(validation), to: runDirectory.validationFile)
                    try best.offer(validation, epoch: epoch, write: writeCheckpoint(to:))
                }
            }
        }
        return test!
    }

    /// One pass over the training split; returns the epoch's metrics, summed over ranks.
    func trainEpoch() throws -> EpochMetrics {
        let started = Date()
        let phase = phases.last { $0.epochs.lowerBound <= epoch } ?? phases[0]
        if epoch == phase.epochs.lowerBound {
            if phase.restartsOptimizer && epoch > 0 { optimizer.reset() }
            if phases.count > 1 { progress.say("epoch \(epoch + 1): \(phase.name) (epochs \(phase.epochs.lowerBound + 1)-\(phase.epochs.upperBound))") }
        }
        let schedule = learningRateSchedule(at: epoch)
        let scope = phase.scope
        let trainable = scope == .everything(exits: network.exitCount) ? nil : network.trainableRanges(scope)
        let phaseWeighting: ExitWeighting = phase.fixedWeights.map { FixedExitWeights($0) } ?? weighting
        let adjustment = ExitObjective.WeightAdjustment(exitScale: job.method.anneal?.factors(epoch: epoch), leak: job.method.leak,
                                                        normalized: job.method.normalizeWeights)
        let choosesGroups = job.method.name.groupsClasses && classGroups == nil && epoch + 1 == job.groupingEpochs
        var recallCorrect = [[Double]](repeating: [Double](repeating: 0, count: network.classes), count: network.exitCount)
        var classCounts = [Double](repeating: 0, count: network.classes)
        try together { try shard.prepare(epoch: epoch) }
        let data = shard.data
        let randomKey = DropoutKernels.mix64(job.training.seed ^ DropoutKernels.mix64(UInt64(epoch) &+ 0xD120_9047))
        var statistics = ExitObjective.Statistics(exits: network.exitCount)
        var samples = 0
        var learningRate: Float = 0
        let steps = shard.stepsPerEpoch
        try withBatchBuffers(network.maxBatch, featureCount: data.featureCount) { x, y, ids in
            for step in 0..<steps {
                let positions = shard.positions(step: step)
                let globalCount = shard.globalCount(step: step)
                learningRate = schedule.rate(globalStep - schedule.firstStep)
                data.gather(positions, features: x, labels: y, sampleIDs: ids)
                let batch = positions.count
                if job.augmentation.isActive { augment(x, sampleIDs: ids, batch: batch, randomKey: randomKey) }
                let context = ForwardContext(mode: .training, sampleIDs: UnsafeBufferPointer(rebasing: ids[0..<batch]), randomKey: randomKey)
                network.forward(UnsafeBufferPointer(x), batch: batch, context: context, scope: scope)
                let stepStatistics = objective.evaluate(network: network, labels: UnsafeBufferPointer(y), batch: batch,
                                                        weighting: phaseWeighting, globalBatch: globalCount,
                                                        adjustment: adjustment, activeExits: scope.exitLimit)
                if choosesGroups {
                    objective.tallyRecall(labels: UnsafeBufferPointer(y), batch: batch, correct: &recallCorrect, counts: &classCounts)
                }
                network.backward(input: UnsafeBufferPointer(x), batch: batch, scope: scope, gradientsReady: gradientsReady)
                if let gradientReducer {
                    stallWatch?.enter("the gradient all-reduce", step: globalStep + 1, epoch: epoch + 1)
                    _ = try gradientReducer.finish()
                    stallWatch?.leave()
                }
                // Every rank holds the same reduced gradients, so every rank decides alike.
                if Reductions.sum(UnsafeBufferPointer(network.store.gradients)).isFinite {
                    optimizer.step(network.store, learningRate: learningRate, ranges: trainable)
                    statistics += stepStatistics
                    samples += globalCount
                } else if job.training.skipNonfiniteSteps {
                    progress.say("warning: skipped step \(globalStep + 1) (epoch \(epoch + 1)): non-finite gradient")
                } else {
                    throw AgreedFailure(
                        underlying: TrainingError("non-finite gradient at step \(globalStep + 1) (epoch \(epoch + 1)); lower optimizer.lr, check the data, or set training.skip_nonfinite_steps"),
                        reportingRank: 0, isReporter: isRoot)
                }
                globalStep += 1
                afterEachStep?()
                if progress.enabled {
                    let elapsed = Date().timeIntervalSince(started)
                    progress.step(epoch: epoch + 1, epochs: job.training.epochs, step: step + 1, steps: steps,
                                  loss: statistics.loss.map { $0 / Double(max(1, samples / ranks)) },
                                  samplesPerSecond: Double(samples) / elapsed,
                                  secondsLeft: elapsed / Double(step + 1) * Double(steps - step - 1))
                }
            }
        }
        var totals = statistics.flattened
        if let communicator, communicator.size > 1 {
            stallWatch?.enter("the epoch's statistics", step: globalStep, epoch: epoch + 1)
            try totals.withUnsafeMutableBufferPointer { try communicator.allReduceSum($0) }
            stallWatch?.leave()
        }
        let summed = ExitObjective.Statistics(flattened: totals)
        if choosesGroups { try chooseClassGroups(correct: recallCorrect, counts: classCounts) }
        let n = Double(max(samples, 1))
        let seconds = Date().timeIntervalSince(started)
        return EpochMetrics(
            epoch: epoch, globalStep: globalStep, learningRate: Double(learningRate),
            loss: summed.loss.map { $0 / n }, weightedLoss: summed.weightedLoss.map { $0 / n },
            gateMean: summed.gate.map { $0 / n }, trainAccuracy: summed.correct.map { $0 / n },
            samples: samples, seconds: seconds, samplesPerSecond: n / seconds, evaluation: nil)
    }

    /// The learning-rate schedule of the phase segment `epoch` lies in: a restarting phase
    /// begins a new schedule that runs until the next restarting phase.
    func learningRateSchedule(at epoch: Int) -> (rate: (Int) -> Float, firstStep: Int) {
        let start = phases.filter { $0.restartsOptimizer && $0.epochs.lowerBound <= epoch }.map(\.epochs.lowerBound).max() ?? 0
        let end = phases.filter { $0.restartsOptimizer && $0.epochs.lowerBound > epoch }.map(\.epochs.lowerBound).min() ?? job.training.epochs
        let schedule = LearningRateSchedule(section: job.schedule, baseRate: job.optimizer.lr, stepsPerEpoch: shard.stepsPerEpoch, epochs: end - start)
        return ({ schedule.rate(atStep: $0) }, start * shard.stepsPerEpoch)
    }

    /// Shifts and flips each training image of the batch in place, from (seed, epoch, sample id).
    private func augment(_ x: UnsafeMutableBufferPointer<Float>, sampleIDs: UnsafeMutableBufferPointer<Int64>, batch: Int, randomKey: UInt64) {
        let shape = shard.featureShape
        let size = shape.reduce(1, *)
        withUnsafeTemporaryAllocation(of: Float.self, capacity: size) { scratch in
            for i in 0..<batch {
                let image = x.baseAddress! + i * size
                let draw = ImageAugmentation.draw(key: randomKey ^ 0xA067_3E27, sampleID: sampleIDs[i],
                                                  padding: job.augmentation.cropPadding, flip: job.augmentation.horizontalFlip)
                guard draw.dy != 0 || draw.dx != 0 || draw.flip else { continue }
                scratch.baseAddress!.update(from: image, count: size)
                ImageAugmentation.shiftAndFlip(UnsafePointer(scratch.baseAddress!), into: image, channels: shape[0], height: shape[1],
                                               width: shape[2], dy: draw.dy, dx: draw.dx, flip: draw.flip)
            }
        }
    }

    func writeCheckpoint() throws {
        let path = runDirectory.checkpoint(epoch: epoch)
        try writeCheckpoint(to: path)
        try linkAtomically(path, to: runDirectory.lastCheckpoint)
    }

    func writeCheckpoint(to path: String) throws {
        let checkpoint = Checkpoint(job: job, epoch: epoch, globalStep: globalStep, featureShape: shard.featureShape,
                                    classNames: reader.classNames, network: network, optimizer: optimizer, classGroups: classGroups)
        try checkpoint.write(to: path)
    }
}

/// Training cannot go on.
public struct TrainingError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
