import CGTModel

/// A training job: everything `cgt train` needs besides the command line.
///
/// Every section has defaults (the paper's Indian Pines MLP with SoftCGT), so a job file
/// names only what it changes. The resolved job, defaults filled in, is written to the run
/// folder and into every checkpoint. See README.md, "Job files".
public struct Job: Codable, Equatable, Sendable {
    public var name: String
    public var data: DataSection
    public var model: ModelSection
    public var method: MethodSection
    public var training: TrainingSection
    public var optimizer: OptimizerSection
    public var schedule: ScheduleSection
    public var eval: EvalSection
    public var runtime: RuntimeSection
    public var augmentation: AugmentationSection

    enum CodingKeys: String, CodingKey, CaseIterable { case name, data, model, method, training, optimizer, schedule, eval, runtime, augmentation }

    public init() {
        name = "job"
        data = DataSection()
        model = ModelSection()
        method = MethodSection()
        training = TrainingSection()
        optimizer = OptimizerSection()
        schedule = ScheduleSection()
        eval = EvalSection()
        runtime = RuntimeSection()
        augmentation = AugmentationSection()
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        let defaults = Job()
        name = try c.value(.name, default: defaults.name)
        data = try c.value(.data, default: defaults.data)
        model = try c.value(.model, default: defaults.model)
        method = try c.value(.method, default: defaults.method)
        training = try c.value(.training, default: defaults.training)
        optimizer = try c.value(.optimizer, default: defaults.optimizer)
        schedule = try c.value(.schedule, default: defaults.schedule)
        eval = try c.value(.eval, default: defaults.eval)
        runtime = try c.value(.runtime, default: defaults.runtime)
        augmentation = try c.value(.augmentation, default: defaults.augmentation)
    }
}

/// Where the samples come from.
public struct DataSection: Codable, Equatable, Sendable {
    /// An HDF5 file in the layout of `hdf5_data/README.md`.
    public var path: String = "hdf5_data/indian_pines.h5"

    enum CodingKeys: String, CodingKey, CaseIterable { case path }
    public init() {}
    public init(from decoder: Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        path = try c.value(.path, default: DataSection().path)
    }
}

/// The network: `mlp`, the paper's Indian Pines backbone, or `cnn`, its Fashion-MNIST one.
public struct ModelSection: Codable, Equatable, Sendable {
    public var kind: ModelKind = .mlp
    /// `mlp`: widths of the hidden layers, one block each.
    public var hidden: [Int] = [256, 256, 256, 256, 256]
    /// `cnn`: output channels of each Conv -> BatchNorm -> ReLU -> MaxPool block.
    public var channels: [Int] = [32, 64, 128]
    /// `cnn`: the (odd) convolution kernel size.
    public var kernelSize: Int = 3
    /// 1-based blocks followed by an exit; the last must be the last block.
    public var exits: [Int] = [1, 3, 5]
    public var batchnorm: Bool = true
    /// `mlp`: dropout after each hidden layer.
    public var dropout: Float = 0.2

    enum CodingKeys: String, CodingKey, CaseIterable { case kind, hidden, channels, kernelSize = "kernel_size", exits, batchnorm, dropout }
    public init() {}
    public init(from decoder: Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        let d = ModelSection()
        kind = try c.value(.kind, default: d.kind)
        hidden = try c.value(.hidden, default: d.hidden)
        channels = try c.value(.channels, default: d.channels)
        kernelSize = try c.value(.kernelSize, default: d.kernelSize)
        exits = try c.value(.exits, default: d.exits)
        batchnorm = try c.value(.batchnorm, default: d.batchnorm)
        dropout = try c.value(.dropout, default: d.dropout)
    }

    /// The number of backbone blocks.
    public var blockCount: Int { kind == .cnn ? channels.count : hidden.count }
}

/// Training-time image augmentation, drawn per sample from (seed, epoch, sample id).
public struct AugmentationSection: Codable, Equatable, Sendable {
    /// Random crop: shift each image by up to this many pixels (zero padding), as a crop of the
    /// image padded by this much. The paper's Fashion-MNIST setting is 2.
    public var cropPadding: Int = 0
    /// Mirror each image left-right with probability 1/2.
    public var horizontalFlip: Bool = false

    enum CodingKeys: String, CodingKey, CaseIterable { case cropPadding = "crop_padding", horizontalFlip = "horizontal_flip" }
    public init() {}
    public init(from decoder: Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        let d = AugmentationSection()
        cropPadding = try c.value(.cropPadding, default: d.cropPadding)
        horizontalFlip = try c.value(.horizontalFlip, default: d.horizontalFlip)
    }

    public var isActive: Bool { cropPadding > 0 || horizontalFlip }
}

/// How the exits' losses are weighted: `hardcgt`, `softcgt` (the paper), or a baseline:
/// `branchynet` (fixed weights), `co` (Cascade Optimization, stage by stage) or `classynet`
/// (shallow exits answer a group of classes). See README.md, "Methods".
public struct MethodSection: Codable, Equatable, Sendable {
    public var name: TrainingMethod = .softCGT
    /// The confidence threshold of the gates (Eq. 3 and 6).
    public var tau: Float = 0.9
    /// SoftCGT's gate sharpness k in r = 1 - sigmoid(k (s - tau)); 1 is the paper.
    public var sharpness: Float = 1
    /// SoftCGT's score: `max_probability` (the paper) or `true_class_probability`.
    public var score: SoftCGT.Score = .maxProbability
    /// Fixed lambda_e, one per exit: `branchynet` and `classynet`.
    public var weights: [Float]? = nil
    /// `co`: epochs of each stage (stage e trains the blocks after exit e-1 up to exit e and
    /// head e, everything before frozen); default: `training.epochs` split evenly.
    public var stageEpochs: [Int]? = nil
    /// `classynet`: the classes each shallow exit answers, one list per exit but the last;
    /// default: chosen from the training data after `grouping_epochs` (see `ClassGroups.choose`).
    public var classGroups: [[Int]]? = nil
    /// `classynet`: classes per shallow exit when chosen from the data; default ceil(classes / exits).
    public var groupSize: Int? = nil
    /// `classynet`: epochs of ordinary training (every exit learns every class) before the
    /// groups are chosen from that epoch's per-class recall; default a tenth of the epochs.
    public var groupingEpochs: Int? = nil
    /// Per-exit factors multiplied into the gates (or fixed weights), annealed linearly over
    /// epochs; default none (the paper).
    public var anneal: AnnealSection? = nil
    /// Added to every active exit's weight on every sample; 0 is the paper (the authors' public
    /// code uses 1e-3).
    public var leak: Float = 0
    /// Divides each sample's weights by their sum over the exits; false is the paper (the
    /// authors' public code normalises).
    public var normalizeWeights: Bool = false

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, tau, sharpness, score, weights, stageEpochs = "stage_epochs", classGroups = "class_groups"
        case groupSize = "group_size", groupingEpochs = "grouping_epochs", anneal, leak, normalizeWeights = "normalize_weights"
    }
    public init() {}
    public init(from decoder: Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        let d = MethodSection()
        name = try c.value(.name, default: d.name)
        tau = try c.value(.tau, default: d.tau)
        sharpness = try c.value(.sharpness, default: d.sharpness)
        score = try c.value(.score, default: d.score)
        weights = try c.decodeIfPresent([Float].self, forKey: .weights)
        stageEpochs = try c.decodeIfPresent([Int].self, forKey: .stageEpochs)
        classGroups = try c.decodeIfPresent([[Int]].self, forKey: .classGroups)
        groupSize = try c.decodeIfPresent(Int.self, forKey: .groupSize)
        groupingEpochs = try c.decodeIfPresent(Int.self, forKey: .groupingEpochs)
        anneal = try c.decodeIfPresent(AnnealSection.self, forKey: .anneal)
        leak = try c.value(.leak, default: d.leak)
        normalizeWeights = try c.value(.normalizeWeights, default: d.normalizeWeights)
    }
}

/// Per-exit factors on the exit weights that move linearly from `from` (epoch 1) to `to`
/// (reached at `epochs` and held after), as in the authors' public CGT code.
public struct AnnealSection: Codable, Equatable, Sendable {
    public var from: [Float] = []
    public var to: [Float] = []
    public var epochs: Int = 1

    enum CodingKeys: String, CodingKey, CaseIterable { case from, to, epochs }
    public init() {}
    public init(from decoder: Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        let d = AnnealSection()
        from = try c.value(.from, default: d.from)
        to = try c.value(.to, default: d.to)
        epochs = try c.value(.epochs, default: d.epochs)
    }

    /// The factors in epoch `epoch` (0-based).
    public func factors(epoch: Int) -> [Float] {
        let t = Float(min(epoch, epochs)) / Float(max(1, epochs))
        return zip(from, to).map { $0 + ($1 - $0) * t }
    }
}

/// The training loop.
public struct TrainingSection: Codable, Equatable, Sendable {
    public var epochs: Int = 100
    /// The global batch: samples per optimizer step over all ranks.
    public var batchSize: Int = 64
    public var seed: UInt64 = 0
    /// Write a checkpoint every this many epochs (and always after the last).
    public var checkpointEvery: Int = 10
    /// `global`: every rank reads, each epoch, the rows of its part of each global batch, so
    /// N ranks see exactly the batches of 1 rank. `local`: each rank reads one contiguous
    /// shard once and shuffles within it (less I/O for large data; batches depend on R).
    public var shuffle: ShuffleMode = .global
    /// BatchNorm statistics over the global batch (all-reduced) instead of each rank's part.
    public var syncBatchnorm: Bool = false
    /// Skip optimizer steps whose reduced gradient is NaN or infinite instead of stopping.
    public var skipNonfiniteSteps: Bool = false
    /// `joint` (the paper): everything from the start. `disjoint`: the backbone with its last
    /// exit first, then only the other heads on the frozen backbone. `mixed`: the backbone
    /// first, then everything jointly (arXiv 2407.14320).
    public var regime: TrainingRegime = .joint
    /// `disjoint` and `mixed`: epochs of the first (backbone) phase; default half.
    public var backboneEpochs: Int? = nil
    /// Progressive exit activation: the epoch (0-based) each exit's loss switches on; the first
    /// must be 0. Default: every exit from the start.
    public var exitStartEpochs: [Int]? = nil
    /// Label smoothing eps of every exit's cross-entropy; 0 is the paper (the authors' public
    /// code uses 0.1). Smoothing caps the confidence a head learns near 1 - eps + eps / classes,
    /// so it interacts with the exit threshold tau.
    public var labelSmoothing: Float = 0
    /// Keep the checkpoint that scores best on the validation split by this metric
    /// (`macro_f1`, `accuracy`, `relative_cost`, ...) as `checkpoints/best.h5`, checked every
    /// `eval.every_epochs` epochs (every epoch if that is 0). Needs a validation split.
    public var keepBest: SelectionMetric? = nil

    enum CodingKeys: String, CodingKey, CaseIterable {
        case epochs, batchSize = "batch_size", seed, checkpointEvery = "checkpoint_every", shuffle
        case syncBatchnorm = "sync_batchnorm", skipNonfiniteSteps = "skip_nonfinite_steps"
        case regime, backboneEpochs = "backbone_epochs", exitStartEpochs = "exit_start_epochs", labelSmoothing = "label_smoothing"
        case keepBest = "keep_best"
    }
    public init() {}
    public init(from decoder: Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        let d = TrainingSection()
        epochs = try c.value(.epochs, default: d.epochs)
        batchSize = try c.value(.batchSize, default: d.batchSize)
        seed = try c.value(.seed, default: d.seed)
        checkpointEvery = try c.value(.checkpointEvery, default: d.checkpointEvery)
        shuffle = try c.value(.shuffle, default: d.shuffle)
        syncBatchnorm = try c.value(.syncBatchnorm, default: d.syncBatchnorm)
        skipNonfiniteSteps = try c.value(.skipNonfiniteSteps, default: d.skipNonfiniteSteps)
        regime = try c.value(.regime, default: d.regime)
        backboneEpochs = try c.decodeIfPresent(Int.self, forKey: .backboneEpochs)
        exitStartEpochs = try c.decodeIfPresent([Int].self, forKey: .exitStartEpochs)
        labelSmoothing = try c.value(.labelSmoothing, default: d.labelSmoothing)
        keepBest = try c.decodeIfPresent(SelectionMetric.self, forKey: .keepBest)
    }
}

/// `sgd` (with momentum), `adam` or `adamw`.
public struct OptimizerSection: Codable, Equatable, Sendable {
    public var name: OptimizerKind = .adam
    public var lr: Float = 1e-3
    public var weightDecay: Float = 0
    public var momentum: Float = 0.9
    public var nesterov: Bool = false
    public var betas: [Float] = [0.9, 0.999]
    public var eps: Float = 1e-8

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, lr, weightDecay = "weight_decay", momentum, nesterov, betas, eps
    }
    public init() {}
    public init(from decoder: Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        let d = OptimizerSection()
        name = try c.value(.name, default: d.name)
        lr = try c.value(.lr, default: d.lr)
        weightDecay = try c.value(.weightDecay, default: d.weightDecay)
        momentum = try c.value(.momentum, default: d.momentum)
        nesterov = try c.value(.nesterov, default: d.nesterov)
        betas = try c.value(.betas, default: d.betas)
        eps = try c.value(.eps, default: d.eps)
    }
}

/// The learning rate over time: `constant`, `step` or `cosine`, after an optional linear warm-up.
public struct ScheduleSection: Codable, Equatable, Sendable {
    public var name: ScheduleKind = .constant
    public var warmupEpochs: Double = 0
    /// `step`: multiply by `gamma` every `step_size` epochs.
    public var stepSize: Int = 30
    public var gamma: Float = 0.1
    /// `cosine`: the rate reached at the end.
    public var minLr: Float = 0

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, warmupEpochs = "warmup_epochs", stepSize = "step_size", gamma, minLr = "min_lr"
    }
    public init() {}
    public init(from decoder: Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        let d = ScheduleSection()
        name = try c.value(.name, default: d.name)
        warmupEpochs = try c.value(.warmupEpochs, default: d.warmupEpochs)
        stepSize = try c.value(.stepSize, default: d.stepSize)
        gamma = try c.value(.gamma, default: d.gamma)
        minLr = try c.value(.minLr, default: d.minLr)
    }
}

/// The early-exit evaluation after training.
public struct EvalSection: Codable, Equatable, Sendable {
    /// The exit threshold at inference: the first exit with confidence >= tau answers.
    public var tau: Float = 0.9
    /// Re-estimate BatchNorm statistics on the training split before evaluating.
    public var bnRecalibration: Bool = true
    public var batchSize: Int = 1024
    /// Also evaluate every this many epochs (0: only at the end).
    public var everyEpochs: Int = 0

    enum CodingKeys: String, CodingKey, CaseIterable {
        case tau, bnRecalibration = "bn_recalibration", batchSize = "batch_size", everyEpochs = "every_epochs"
    }
    public init() {}
    public init(from decoder: Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        let d = EvalSection()
        tau = try c.value(.tau, default: d.tau)
        bnRecalibration = try c.value(.bnRecalibration, default: d.bnRecalibration)
        batchSize = try c.value(.batchSize, default: d.batchSize)
        everyEpochs = try c.value(.everyEpochs, default: d.everyEpochs)
    }
}

/// How the process runs, not what it computes: results depend on these only through float
/// rounding (the all-reduce's summation order), so they may change on `--resume`.
public struct RuntimeSection: Codable, Equatable, Sendable {
    /// oneDNN threads per rank (matrix products and convolutions); one per rank unless the ranks leave cores idle.
    public var blasThreads: Int = 1
    /// Gradient all-reduce bucket size in KiB. 1 MiB: on the paper MLP (1.3 MB of gradients,
    /// two buckets) with 2 ranks it gave a scaling efficiency of 0.90 against 0.87 for 256 KiB
    /// and 0.88 for 64 KiB (`cgt bench` under mpirun): each bucket costs a fixed latency, and
    /// the last one still overlaps most of the backward pass. Larger models may want more
    /// (PyTorch DDP uses 25 MB).
    public var bucketKib: Int = 1024
    /// Start each bucket's all-reduce (`MPI_Iallreduce`) as soon as the backward pass has
    /// finished it, instead of one blocking `MPI_Allreduce` per bucket after it. Off by default
    /// because on shared memory (ranks of one node) the copies run on the cores the backward
    /// pass needs: 2 ranks here reached a scaling efficiency of 0.86-0.93 blocking against
    /// 0.78-0.89 overlapped (six and six runs of `cgt bench` under mpirun). Turn it on across a network, where the network card does the transfer.
    public var overlapAllreduce: Bool = false
    /// Warn when a rank waits longer than this in a collective of the training loop (seconds).
    public var stallWarningSeconds: Double = 60

    enum CodingKeys: String, CodingKey, CaseIterable {
        case blasThreads = "blas_threads", bucketKib = "bucket_kib", overlapAllreduce = "overlap_allreduce"
        case stallWarningSeconds = "stall_warning_seconds"
    }
    public init() {}
    public init(from decoder: Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        let d = RuntimeSection()
        blasThreads = try c.value(.blasThreads, default: d.blasThreads)
        bucketKib = try c.value(.bucketKib, default: d.bucketKib)
        overlapAllreduce = try c.value(.overlapAllreduce, default: d.overlapAllreduce)
        stallWarningSeconds = try c.value(.stallWarningSeconds, default: d.stallWarningSeconds)
    }
}
