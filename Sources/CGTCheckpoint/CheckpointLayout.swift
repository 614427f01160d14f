/// The names of a checkpoint file's attributes, groups and datasets, written and read here
/// alone (the layout is documented in `hdf5_data/README.md`).
package enum CheckpointLayout {
    // Attributes of the file.
    package static let kind = "kind"
    package static let layoutVersion = "layout_version"
    package static let cgtVersion = "cgt_version"
    /// The resolved job, as YAML.
    package static let job = "job"
    package static let epoch = "epoch"
    package static let globalStep = "global_step"
    package static let seed = "seed"
    package static let randomState = "random_state"
    package static let featureShape = "feature_shape"
    package static let classNames = "class_names"
    package static let numClasses = "num_classes"
    package static let method = "method"
    package static let exitCriterion = "exit_criterion"
    package static let exitThresholds = "exit_thresholds"
    package static let exitFallback = "exit_fallback"
    /// ClassyNet's 0/1 membership `[exits, classes]`.
    package static let exitClasses = "exit_classes"
    /// Parameters and buffers by PyTorch's dotted names, as nested groups.
    package static let model = "model"
    /// Which BatchNorm statistics `/model` holds: "training" (running averages) or
    /// "re-estimated" (by the evaluation that measured the model, `eval.bn_recalibration`).
    package static let batchNormStatistics = "batchnorm_statistics"
    /// Steps taken of the epoch after `epoch` (0: at an epoch's end).
    package static let stepInEpoch = "epoch_step"
    /// That epoch's statistics so far: the summed `ExitObjective.Statistics`, then samples and learning rate.
    package static let partialEpoch = "epoch_partial"
    /// Ranks that took a mid-epoch checkpoint's steps.
    package static let epochRanks = "epoch_ranks"
    /// The shuffle buffer the stopped epoch streamed through (absent or 0: pieces held whole).
    package static let epochBufferRows = "epoch_buffer_rows"
    /// SHA-256 of the data file trained on.
    package static let dataSHA256 = "data_sha256"
    /// Training's running statistics when `/model` holds re-estimated ones, for resuming.
    package static let trainingBuffers = "training_buffers"
    /// BatchNorm's step counter, an int64 scalar next to `running_mean`.
    package static let batchesTracked = "num_batches_tracked"
    /// Optimizer state: one group per state buffer; attributes `name` and `step_count`.
    package static let optimizer = "optimizer"
    package static let optimizerName = "name"
    package static let stepCount = "step_count"
    /// L2W's state (`L2WState`): `model/` and `optimizer/` of the weight network, attribute
    /// `steps`, and the group `meta_batch`.
    package static let l2w = "l2w"
    package static let l2wSteps = "steps"
    package static let metaBatch = "meta_batch"
    /// `[rows, features]` float32, `[rows]` int32 and int64; attributes `rank_rows` (rows per
    /// rank), `global_count` and `random_key` (the step's dropout key, as int64 bits).
    package static let metaFeatures = "features"
    package static let metaLabels = "labels"
    package static let metaSampleIDs = "sample_ids"
    package static let metaRankRows = "rank_rows"
    package static let metaGlobalCount = "global_count"
    package static let metaRandomKey = "random_key"
}
