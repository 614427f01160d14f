import CGTCheckpoint
import CGTJob
import CGTKernels
import CGTModel

/// What an epoch of the loop sets up before its first step, and checks after its last.
extension Trainer {
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
        init(_ partial: PartialEpoch) {
            statistics = partial.statistics
            samples = partial.samples
            localSamples = samples
            learningRate = partial.learningRate
        }
    }

    /// The phase, weighting, schedule and random key of the current epoch; at a phase's first
    /// epoch, restarts the optimizer if the phase asks and says so (not again when `resuming`
    /// mid-epoch: the stored optimizer state is already the restarted one).
    func beginEpoch(resuming: Bool) -> EpochSetup {
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
                normalized: job.method.normalizeWeights, spread: job.method.spread),
            randomKey: DropoutKernels.mix64(job.training.seed ^ DropoutKernels.mix64(UInt64(epoch) &+ 0xD120_9047)),
            learningRate: schedule.rate, firstScheduleStep: schedule.firstStep)
    }

    /// Fails when the model's parameters or buffers, or the buffers an evaluation re-estimated,
    /// hold a NaN or an infinity: checked by every rank before anything of the epoch is written,
    /// so no checkpoint of a diverged model is ever made.
    /// - Parameter epochNumber: the 1-based epoch the last step belongs to, for the message.
    func checkFiniteState(epochNumber: Int) throws {
        if let name = network.store.firstNonFiniteTensor() {
            throw diverged(name, step: globalStep, epoch: epochNumber)
        }
        if let values = checkpoints.evaluatedBuffers(of: epoch),
            let name = values.withUnsafeBufferPointer({
                ParameterStore.firstNonFinite($0, network.store.bufferSlots)
            })
        {
            throw TrainingError(
                "\(name) re-estimated for evaluation holds a non-finite value after epoch \(epoch): the model diverged; lower optimizer.lr (now \(job.optimizer.lr)) and train again"
            )
        }
    }

    func diverged(_ name: String, step: Int, epoch: Int) -> TrainingError {
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
    func augment(
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
}
