import CGTModel

/// A training job: everything `cgt train` needs besides the command line.
///
/// Every section has defaults (the paper's Indian Pines MLP with SoftCGT), so a job file
/// names only what it changes. The resolved job, defaults filled in, is written to the run
/// folder and into every checkpoint. See README.md, "Job files".
public struct Job: JobSection, Equatable, Sendable {
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
    public var logging: LoggingSection

    public static let fields: [JobField<Job>] = [
        .init("name", \.name), .init("data", \.data), .init("model", \.model), .init("method", \.method),
        .init("training", \.training), .init("optimizer", \.optimizer), .init("schedule", \.schedule),
        .init("eval", \.eval), .init("runtime", \.runtime), .init("augmentation", \.augmentation),
        .init("logging", \.logging),
    ]

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
        logging = LoggingSection()
    }

}

/// Where the samples come from.
public struct DataSection: JobSection, Equatable, Sendable {
    /// An HDF5 file in the layout of `hdf5_data/README.md`.
    public var path: String = "hdf5_data/indian_pines.h5"

    public static let fields: [JobField<DataSection>] = [
        .init("path", \.path)
    ]
    public init() {}
}

/// The network: `mlp`, the paper's Indian Pines backbone, `cnn`, its Fashion-MNIST one, or
/// `resnet`, a residual backbone.
public struct ModelSection: JobSection, Equatable, Sendable {
    public var kind: ModelKind = .mlp
    /// `mlp`: widths of the hidden layers, one block each.
    public var hidden: [Int] = [256, 256, 256, 256, 256]
    /// `cnn`: output channels of each Conv -> BatchNorm -> ReLU -> MaxPool block; `resnet`:
    /// channels of each stage's residual blocks.
    public var channels: [Int] = [32, 64, 128]
    /// `cnn`, `resnet`: the (odd) convolution kernel size.
    public var kernelSize: Int = 3
    /// `resnet`: output channels of the stem convolution.
    public var stemChannels: Int = 16
    /// `resnet`: residual blocks in each stage.
    public var blocksPerStage: Int = 1
    /// 1-based blocks (`resnet`: stages) followed by an exit; the last must be the last block.
    public var exits: [Int] = [1, 3, 5]
    public var batchnorm: Bool = true
    /// `mlp`: dropout after each hidden layer.
    public var dropout: Float = 0.2

    public static let fields: [JobField<ModelSection>] = [
        .init("kind", \.kind), .init("hidden", \.hidden), .init("channels", \.channels),
        .init("kernel_size", \.kernelSize), .init("stem_channels", \.stemChannels),
        .init("blocks_per_stage", \.blocksPerStage), .init("exits", \.exits), .init("batchnorm", \.batchnorm),
        .init("dropout", \.dropout),
    ]
    public init() {}

    /// The number of backbone blocks (`resnet`: stages).
    public var blockCount: Int {
        switch kind {
        case .mlp: hidden.count
        case .cnn, .resnet: channels.count
        }
    }
}

/// Training-time image augmentation, drawn per sample from (seed, epoch, sample id).
public struct AugmentationSection: JobSection, Equatable, Sendable {
    /// Random crop: shift each image by up to this many pixels (zero padding), as a crop of the
    /// image padded by this much. The paper's Fashion-MNIST setting is 2.
    public var cropPadding: Int = 0
    /// Mirror each image left-right with probability 1/2.
    public var horizontalFlip: Bool = false

    public static let fields: [JobField<AugmentationSection>] = [
        .init("crop_padding", \.cropPadding), .init("horizontal_flip", \.horizontalFlip),
    ]
    public init() {}

    public var isActive: Bool { cropPadding > 0 || horizontalFlip }
}

/// The training loop.
public struct TrainingSection: JobSection, Equatable, Sendable {
    public var epochs: Int = 100
    /// The global batch: samples per optimizer step over all ranks.
    public var batchSize: Int = 64
    public var seed: UInt64 = 0
    /// Write a checkpoint every this many epochs (and always after the last).
    public var checkpointEvery: Int = 10
    /// How the training split is dealt to the ranks each epoch. `blocks` (the default): chunks
    /// permuted each epoch, a contiguous piece of them per rank, so each rank reads about 1/R
    /// of the split per epoch; every sample once per epoch, in the steps of `global`, but which
    /// samples meet in a batch depends on R. `global`: every rank reads, each epoch, the rows
    /// of its part of each global batch, so N ranks see exactly the batches of 1 rank (the mode
    /// for comparing rank counts), at the price of each rank decompressing nearly the whole
    /// split every epoch. `local`: each rank reads one contiguous shard once and shuffles
    /// within it (batches depend on R; a rank never sees another's samples).
    public var shuffle: ShuffleMode = .blocks
    /// How much of its piece a rank holds at once (`ShuffleBufferSize`; nil: `auto`). A piece
    /// that fits is held and shuffled whole; a larger one streams through a shuffle buffer of
    /// this size (`blocks`) or is read a segment at a time (`global`, the same batches).
    public var shuffleBuffer: ShuffleBufferSize? = nil
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

    public static let fields: [JobField<TrainingSection>] = [
        .init("epochs", \.epochs), .init("batch_size", \.batchSize), .init("seed", \.seed),
        .init("checkpoint_every", \.checkpointEvery), .init("shuffle", \.shuffle),
        .init("shuffle_buffer", \.shuffleBuffer),
        .init("sync_batchnorm", \.syncBatchnorm), .init("skip_nonfinite_steps", \.skipNonfiniteSteps),
        .init("regime", \.regime), .init("backbone_epochs", \.backboneEpochs),
        .init("exit_start_epochs", \.exitStartEpochs), .init("label_smoothing", \.labelSmoothing),
        .init("keep_best", \.keepBest),
    ]
    public init() {}
}

/// `sgd` (with momentum), `adam` or `adamw`.
public struct OptimizerSection: JobSection, Equatable, Sendable {
    public var name: OptimizerKind = .adam
    public var lr: Float = 1e-3
    public var weightDecay: Float = 0
    public var momentum: Float = 0.9
    public var nesterov: Bool = false
    public var betas: [Float] = [0.9, 0.999]
    public var eps: Float = 1e-8

    public static let fields: [JobField<OptimizerSection>] = [
        .init("name", \.name), .init("lr", \.lr), .init("weight_decay", \.weightDecay), .init("momentum", \.momentum),
        .init("nesterov", \.nesterov), .init("betas", \.betas), .init("eps", \.eps),
    ]
    public init() {}
}

/// The learning rate over time: `constant`, `step` or `cosine`, after an optional linear warm-up.
public struct ScheduleSection: JobSection, Equatable, Sendable {
    public var name: ScheduleKind = .constant
    public var warmupEpochs: Double = 0
    /// `step`: multiply by `gamma` every `step_size` epochs.
    public var stepSize: Int = 30
    public var gamma: Float = 0.1
    /// `cosine`: the rate reached at the end.
    public var minLr: Float = 0

    public static let fields: [JobField<ScheduleSection>] = [
        .init("name", \.name), .init("warmup_epochs", \.warmupEpochs), .init("step_size", \.stepSize),
        .init("gamma", \.gamma), .init("min_lr", \.minLr),
    ]
    public init() {}
}

/// The early-exit evaluation after training.
public struct EvalSection: JobSection, Equatable, Sendable {
    /// The exit threshold at inference: the first exit with confidence >= tau answers.
    public var tau: Float = 0.9
    /// Re-estimate BatchNorm statistics on the training split before evaluating.
    public var bnRecalibration: Bool = true
    /// The global batches the re-estimation averages over, at most (fewer when the training
    /// split holds fewer): its rows, and so its reads, stay bounded however large the split.
    /// 200 is Detectron2's PreciseBN default (`PRECISE_BN.NUM_ITER`).
    public var bnRecalibrationBatches: Int = 200
    public var batchSize: Int = 1024
    /// Also evaluate every this many epochs (0: only at the end).
    public var everyEpochs: Int = 0

    public static let fields: [JobField<EvalSection>] = [
        .init("tau", \.tau), .init("bn_recalibration", \.bnRecalibration),
        .init("bn_recalibration_batches", \.bnRecalibrationBatches), .init("batch_size", \.batchSize),
        .init("every_epochs", \.everyEpochs),
    ]
    public init() {}
}

/// How the process runs, not what it computes: results depend on these only through float
/// rounding (the all-reduce's summation order), so they may change on `--resume`.
public struct RuntimeSection: JobSection, Equatable, Sendable {
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
    /// End the job when a rank has waited this long in one collective (0: never): a rank that
    /// never returns (a hung node, a stopped process) then stops every rank instead of holding
    /// the allocation, with the last checkpoint intact. As Horovod's stall shutdown.
    public var stallShutdownSeconds: Double = 1800
    /// Signals on which every rank finishes its step, rank 0 writes a checkpoint of exactly that
    /// point (mid-epoch included) and the job exits with status 75 for a requeue: Slurm's
    /// SIGTERM at the time limit or on preemption, and the SIGUSR1 `--signal` sends ahead.
    public var stopSignals: [StopSignal] = [.term, .usr1]

    public static let fields: [JobField<RuntimeSection>] = [
        .init("blas_threads", \.blasThreads), .init("bucket_kib", \.bucketKib),
        .init("overlap_allreduce", \.overlapAllreduce), .init("stall_warning_seconds", \.stallWarningSeconds),
        .init("stall_shutdown_seconds", \.stallShutdownSeconds), .init("stop_signals", \.stopSignals),
    ]
    public init() {}
}

/// What rank 0 records beyond `metrics.jsonl`; like `runtime`, it may change on `--resume`.
public struct LoggingSection: JobSection, Equatable, Sendable {
    /// TensorBoard event files in `<run>/tensorboard/`: per step the loss and mean gate of each
    /// exit, the learning rate and samples/s; per epoch the epoch's means and held-out metrics.
    public var tensorboard: Bool = false

    public static let fields: [JobField<LoggingSection>] = [.init("tensorboard", \.tensorboard)]
    public init() {}
}
