import CGTData
import CGTKernels
import CGTModel
import CGTMPI
import Foundation

/// Trains an early-exit network as a job describes, data-parallel over the ranks of a communicator.
///
/// Every rank computes forward, gates and gradients for its part of each global batch; the
/// gradients are summed over ranks in one all-reduce of the flat gradient buffer, and every
/// rank takes the same optimizer step. Rank 0 writes the metrics, checkpoints and evaluation.
public final class Trainer {
    public let job: Job
    public let runDirectory: RunDirectory
    public let network: EarlyExitNetwork
    public let optimizer: Optimizer
    let communicator: Communicator?
    let weighting: ExitWeighting
    let objective: ExitObjective
    let trainSplit: DatasetSplit
    let testSplit: DatasetSplit
    let classNames: [String]
    let plan: BatchPlan
    let schedule: LearningRateSchedule
    var progress: ProgressReporter
    /// Epochs completed and optimizer steps taken.
    public private(set) var epoch = 0
    public private(set) var globalStep = 0

    var rank: Int { communicator?.rank ?? 0 }
    var ranks: Int { communicator?.size ?? 1 }
    var isRoot: Bool { rank == 0 }

    /// Opens the data, builds the network and optimizer, and restores the newest checkpoint of
    /// the run folder when `resume` is set.
    public init(job: Job, run: RunDirectory, communicator: Communicator?, resume: Bool, progress: ProgressReporter) throws {
        self.job = job
        self.runDirectory = run
        self.communicator = communicator
        self.progress = progress
        MatrixMultiply.setThreadCount(job.runtime.blasThreads)
        let reader = try DatasetReader(path: job.data.path)
        defer { try? reader.close() }
        guard reader.featureShape.count == 1 || job.model.kind != "mlp" else {
            throw DatasetError(file: job.data.path, object: "/", "feature_shape \(reader.featureShape): the mlp model needs flat features (one dimension)")
        }
        trainSplit = try reader.read(split: DatasetLayout.train)
        testSplit = try reader.read(split: DatasetLayout.test)
        classNames = reader.classNames
        network = job.makeNetwork(inputFeatures: reader.featureCount, classes: reader.classes)
        optimizer = job.makeOptimizer(parameterCount: network.store.parameterCount)
        weighting = job.makeExitWeighting()
        objective = ExitObjective(exits: network.exitCount, classes: network.classes)
        let ranks = communicator?.size ?? 1
        guard job.training.batchSize >= 2 * ranks else {
            throw JobError(source: "job", key: "training.batch_size", "\(job.training.batchSize) gives some of the \(ranks) ranks fewer than two samples per step")
        }
        plan = BatchPlan(sampleCount: trainSplit.count, globalBatch: job.training.batchSize, ranks: ranks)
        guard plan.stepsPerEpoch > 0 else {
            throw JobError(source: "job", key: "training.batch_size", "the training split has \(trainSplit.count) samples, too few for one step")
        }
        schedule = LearningRateSchedule(section: job.schedule, baseRate: job.optimizer.lr, stepsPerEpoch: plan.stepsPerEpoch, epochs: job.training.epochs)
        let localMax = (job.training.batchSize + ranks - 1) / ranks
        network.reserve(maxBatch: localMax)
        objective.reserve(maxBatch: localMax)
        network.initialize(seed: job.training.seed)
        if resume {
            try restoreNewestCheckpoint()
        }
    }

    private func restoreNewestCheckpoint() throws {
        guard runDirectory.hasCheckpoint else {
            throw CheckpointError(file: runDirectory.lastCheckpoint, "--resume: no checkpoint in \(runDirectory.checkpointFolder)")
        }
        let checkpoint = try Checkpoint.read(from: runDirectory.lastCheckpoint)
        var saved = checkpoint.job, current = job
        saved.training.epochs = 0
        current.training.epochs = 0
        guard saved == current else {
            throw CheckpointError(file: runDirectory.lastCheckpoint, "--resume: the checkpoint was written by a different job (only training.epochs may change); compare \(runDirectory.jobFile)")
        }
        try checkpoint.restore(into: network, optimizer: optimizer, source: runDirectory.lastCheckpoint)
        epoch = checkpoint.epoch
        globalStep = checkpoint.globalStep
        progress.say("resumed from \(runDirectory.lastCheckpoint) at epoch \(epoch), step \(globalStep)")
    }

    /// Trains the remaining epochs, writes checkpoints and metrics, and evaluates the result.
    @discardableResult
    public func run() throws -> RoutingStatistics {
        if isRoot {
            try runDirectory.create()
            try writeFileAtomically(Data(try JobLoader.yaml(job).utf8), to: runDirectory.jobFile)
            try MetricsLog(path: runDirectory.metricsFile).truncate(afterEpoch: epoch)
        }
        let log = MetricsLog(path: runDirectory.metricsFile)
        let started = Date()
        let firstEpoch = epoch
        while epoch < job.training.epochs {
            var metrics = try trainEpoch()
            epoch += 1
            metrics.epoch = epoch
            if job.eval.everyEpochs > 0 && epoch % job.eval.everyEpochs == 0 && epoch < job.training.epochs {
                metrics.evaluation = evaluate()
            }
            let done = Double(epoch - firstEpoch)
            let secondsLeft = Date().timeIntervalSince(started) / done * Double(job.training.epochs - epoch)
            progress.epoch(metrics, epochs: job.training.epochs, secondsLeft: secondsLeft)
            if isRoot {
                try log.append(metrics)
                if epoch % job.training.checkpointEvery == 0 || epoch == job.training.epochs { try writeCheckpoint() }
            }
        }
        let result = evaluate()
        if isRoot {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try writeFileAtomically(try encoder.encode(result), to: runDirectory.evaluationFile)
        }
        return result
    }

    /// One pass over the training split; returns the epoch's metrics, summed over ranks.
    func trainEpoch() throws -> EpochMetrics {
        let started = Date()
        let order = plan.order(seed: job.training.seed, epoch: epoch)
        let randomKey = DropoutKernels.mix64(job.training.seed ^ DropoutKernels.mix64(UInt64(epoch) &+ 0xD120_9047))
        var statistics = ExitObjective.Statistics(exits: network.exitCount)
        var samples = 0
        var learningRate: Float = 0
        let steps = plan.stepsPerEpoch
        try withBatchBuffers(network.maxBatch, featureCount: trainSplit.featureCount) { x, y, ids in
            for step in 0..<steps {
                let local = plan.localRange(step: step, rank: rank)
                let globalCount = plan.globalRange(step: step).count
                learningRate = schedule.rate(atStep: globalStep)
                trainSplit.gather(order[local], features: x, labels: y, sampleIDs: ids)
                let batch = local.count
                let context = ForwardContext(mode: .training, sampleIDs: UnsafeBufferPointer(rebasing: ids[0..<batch]), randomKey: randomKey)
                network.forward(UnsafeBufferPointer(x), batch: batch, context: context)
                statistics += objective.evaluate(network: network, labels: UnsafeBufferPointer(y), batch: batch,
                                                 weighting: weighting, globalBatch: globalCount)
                network.backward(input: UnsafeBufferPointer(x), batch: batch)
                if let communicator, communicator.size > 1 {
                    try communicator.allReduceSum(network.store.gradients)
                }
                optimizer.step(network.store, learningRate: learningRate)
                globalStep += 1
                samples += globalCount
                let elapsed = Date().timeIntervalSince(started)
                progress.step(epoch: epoch + 1, epochs: job.training.epochs, step: step + 1, steps: steps,
                              loss: statistics.loss.map { $0 / Double(max(1, samples / ranks)) },
                              samplesPerSecond: Double(samples) / elapsed,
                              secondsLeft: elapsed / Double(step + 1) * Double(steps - step - 1))
            }
        }
        var totals = statistics.flattened
        if let communicator, communicator.size > 1 {
            try totals.withUnsafeMutableBufferPointer { try communicator.allReduceSum($0) }
        }
        let summed = ExitObjective.Statistics(flattened: totals)
        let n = Double(samples)
        let seconds = Date().timeIntervalSince(started)
        return EpochMetrics(
            epoch: epoch, globalStep: globalStep, learningRate: Double(learningRate),
            loss: summed.loss.map { $0 / n }, weightedLoss: summed.weightedLoss.map { $0 / n },
            gateMean: summed.gate.map { $0 / n }, trainAccuracy: summed.correct.map { $0 / n },
            samples: samples, seconds: seconds, samplesPerSecond: n / seconds, evaluation: nil)
    }

    /// Early-exit routing statistics on the test split at `eval.tau`.
    public func evaluate() -> RoutingStatistics {
        let evaluator = Evaluator(network: network, batchSize: job.eval.batchSize)
        return evaluator.evaluate(test: testSplit, train: job.eval.bnRecalibration ? trainSplit : nil, tau: job.eval.tau,
                                  recalibrationBatch: job.training.batchSize)
    }

    func writeCheckpoint() throws {
        let checkpoint = Checkpoint(job: job, epoch: epoch, globalStep: globalStep, featureShape: trainSplit.featureShape,
                                    classNames: classNames, network: network, optimizer: optimizer)
        let path = runDirectory.checkpoint(epoch: epoch)
        try checkpoint.write(to: path)
        try linkAtomically(path, to: runDirectory.lastCheckpoint)
    }
}
