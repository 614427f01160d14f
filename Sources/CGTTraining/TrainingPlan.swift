import CGTData
import CGTJob
import CGTModel

/// A job checked against the data it will train on and the number of ranks, before anything
/// is built: every check that needs both the job and the dataset's header lives here, so the
/// Trainer starts from a plan that can run.
struct TrainingPlan {
    let job: Job
    let featureShape: [Int]
    let classes: Int
    /// The training phases in order (`Job.trainingPhases`).
    let phases: [TrainingPhase]
    /// ClassyNet's groups when the job gives them (nil otherwise, and until chosen from the data).
    let givenClassGroups: ClassGroups?
    let hasValidationSplit: Bool
    /// What runs but not as the job says, one line each (rank 0 prints them).
    private(set) var warnings: [String] = []

    init(job: Job, reader: DatasetReader, ranks: Int) throws {
        let t = job.training
        guard t.batchSize >= 2 * ranks else {
            throw JobError(
                source: "job", key: "training.batch_size",
                "\(t.batchSize) gives some of the \(ranks) ranks fewer than two samples per step")
        }
        let samples = reader.splitSizes[.train] ?? 0
        guard
            TrainingShard.stepsPerEpoch(sampleCount: samples, globalBatch: t.batchSize, ranks: ranks, mode: t.shuffle)
                > 0
        else {
            throw JobError(
                source: "job", key: "training.batch_size",
                "the training split has \(samples) samples, too few for one step of \(t.batchSize) on \(ranks) rank(s)")
        }
        hasValidationSplit = reader.splitSizes[.validation] != nil
        if t.batchSize > samples {
            // BatchPlan makes one step of the whole split: the batch is clamped to N.
            warnings.append(
                "training.batch_size \(t.batchSize) is larger than the training split (\(samples) samples): each epoch is one step of \(samples)"
            )
        }
        if t.keepBest != nil && !hasValidationSplit {
            throw JobError(
                source: job.data.path, key: "training.keep_best",
                "needs a validation split in the data (cgt prepare ... --validation-fraction 0.1), so the test split plays no part in the choice"
            )
        }
        try job.checkInput(featureShape: reader.featureShape, source: job.data.path)
        if job.augmentation.isActive && reader.featureShape.count != 3 {
            throw JobError(
                source: job.data.path, key: "augmentation",
                "needs images [channels, height, width], the data has feature_shape \(reader.featureShape)")
        }
        let localBatch = BatchPlan(sampleCount: samples, globalBatch: t.batchSize, ranks: ranks).maxLocalBatch
        if let refusal = job.modelSizeRefusal(
            featureShape: reader.featureShape, classes: reader.classes, batch: localBatch, training: true)
        {
            throw JobError(source: "job", key: "model", refusal)
        }
        // Evaluation runs the same network on batches of up to eval.batch_size of a rank's share.
        let largestShare =
            [DatasetSplitName.test, .validation].compactMap { reader.splitSizes[$0] }
            .map { ($0 + ranks - 1) / ranks }.max() ?? 0
        let evaluationBatch = max(1, min(job.eval.batchSize, largestShare))
        if evaluationBatch > localBatch,
            let refusal = job.modelSizeRefusal(
                featureShape: reader.featureShape, classes: reader.classes, batch: evaluationBatch, training: true)
        {
            throw JobError(source: "job", key: "eval.batch_size", refusal + "; give a smaller eval.batch_size")
        }
        givenClassGroups = try job.givenClassGroups(classes: reader.classes, source: job.data.path)
        self.job = job
        featureShape = reader.featureShape
        classes = reader.classes
        phases = job.trainingPhases()
    }

    /// The phase `epoch` lies in.
    func phase(at epoch: Int) -> TrainingPhase {
        phases.last { $0.epochs.lowerBound <= epoch } ?? phases[0]
    }
}
