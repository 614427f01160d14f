import CGTData
import CGTEvaluation
import CGTHDF5
import CGTJob
import CGTModel

extension Checkpoint {
    /// Writes the checkpoint atomically (temporary file, fsync, rename).
    public func write(to path: String) throws {
        let jobText = try JobLoader.yaml(job)
        try writeHDF5Atomically(to: path) { file in
            let root = file.root
            try root.setAttribute(CheckpointLayout.kind, Self.kind)
            try root.setAttribute(CheckpointLayout.layoutVersion, Self.layoutVersion)
            try root.setAttribute(CheckpointLayout.cgtVersion, CGTVersion.current)
            try root.setAttribute(CheckpointLayout.job, jobText)
            try root.setAttribute(CheckpointLayout.epoch, epoch)
            try root.setAttribute(CheckpointLayout.globalStep, globalStep)
            try root.setAttribute(CheckpointLayout.seed, Int(truncatingIfNeeded: job.training.seed))
            try root.setAttribute(
                CheckpointLayout.randomState,
                "counter-based: shuffle keyed by (seed, epoch), dropout by (seed, epoch, layer, sample id)")
            try root.setAttribute(CheckpointLayout.featureShape, featureShape)
            try root.setAttribute(CheckpointLayout.classNames, classNames)
            try root.setAttribute(CheckpointLayout.numClasses, classNames.count)
            try root.setAttribute(CheckpointLayout.method, job.method.name.rawValue)
            try root.setAttribute(CheckpointLayout.exitCriterion, exitPolicy.criterion.rawValue)
            try root.setAttribute(CheckpointLayout.exitThresholds, exitPolicy.thresholds.map(Double.init))
            try root.setAttribute(CheckpointLayout.exitFallback, exitPolicy.fallback.rawValue)
            if let classGroups {
                try root.writeDataset(
                    CheckpointLayout.exitClasses, classGroups.membership,
                    shape: [classGroups.exits, classGroups.classes])
            }
            let modelGroup = try root.createGroup(CheckpointLayout.model)
            for (name, tensor) in model.sorted(by: { $0.key < $1.key }) {
                let (group, leaf) = try Self.parent(of: name, in: modelGroup)
                try group.writeDataset(leaf, tensor.values, shape: tensor.shape)
            }
            try root.setAttribute(CheckpointLayout.batchNormStatistics, batchNormStatistics)
            if let dataSHA256 { try root.setAttribute(CheckpointLayout.dataSHA256, dataSHA256) }
            try root.setAttribute(CheckpointLayout.stepInEpoch, stepInEpoch)
            if let partialEpoch { try root.setAttribute(CheckpointLayout.partialEpoch, partialEpoch) }
            if let epochRanks { try root.setAttribute(CheckpointLayout.epochRanks, epochRanks) }
            if let trainingBuffers {
                let group = try root.createGroup(CheckpointLayout.trainingBuffers)
                for (name, tensor) in trainingBuffers.sorted(by: { $0.key < $1.key }) {
                    let (parent, leaf) = try Self.parent(of: name, in: group)
                    try parent.writeDataset(leaf, tensor.values, shape: tensor.shape)
                }
            }
            for (prefix, count) in batchesTracked.sorted(by: { $0.key < $1.key }) {
                let (group, leaf) = try Self.parent(of: "\(prefix).\(CheckpointLayout.batchesTracked)", in: modelGroup)
                try group.writeDataset(leaf, [Int64(count)], shape: [])
            }
            SignalDrill.reached(.checkpoint)
            let optimizerGroup = try root.createGroup(CheckpointLayout.optimizer)
            try optimizerGroup.setAttribute(CheckpointLayout.optimizerName, job.optimizer.name.rawValue)
            try optimizerGroup.setAttribute(CheckpointLayout.stepCount, optimizerStepCount)
            for (state, tensors) in optimizerState.sorted(by: { $0.key < $1.key }) {
                let stateGroup = try optimizerGroup.createGroup(state)
                for (name, tensor) in tensors.sorted(by: { $0.key < $1.key }) {
                    let (group, leaf) = try Self.parent(of: name, in: stateGroup)
                    try group.writeDataset(leaf, tensor.values, shape: tensor.shape)
                }
            }
        }
    }

    /// Whether `path` is an HDF5 file that says it is a cgt checkpoint (false for anything else).
    public static func isCheckpoint(at path: String) -> Bool {
        (try? withOpenHDF5File(path) { file in
            file.root.hasAttribute(CheckpointLayout.kind)
                && (try? file.root.stringAttribute(CheckpointLayout.kind)) == kind
        }) ?? false
    }

    /// The epochs a checkpoint file has completed (its `epoch` attribute), or nil if it is none.
    static func completedEpochs(at path: String) -> Int? {
        guard isCheckpoint(at: path) else { return nil }
        return try? withOpenHDF5File(path) { try $0.root.intAttribute(CheckpointLayout.epoch) }
    }

    /// The SHA-256 of the data the checkpoint at `path` trained on, read alone (no tensors);
    /// nil when the file is not a checkpoint or predates the attribute.
    public static func recordedDataSHA256(at path: String) -> String? {
        guard isCheckpoint(at: path) else { return nil }
        return try? withOpenHDF5File(path) { file -> String? in
            file.root.hasAttribute(CheckpointLayout.dataSHA256)
                ? try file.root.stringAttribute(CheckpointLayout.dataSHA256) : nil
        }
    }

    /// Reads a checkpoint written by `write(to:)`.
    public static func read(from path: String) throws -> Checkpoint {
        let file: HDF5File
        do {
            file = try HDF5File.open(path)
        } catch {
            throw CheckpointError(file: path, "cannot open as HDF5 (\((error as? HDF5Error)?.message ?? "\(error)"))")
        }
        defer { try? file.close() }
        let root = file.root
        guard root.hasAttribute(CheckpointLayout.kind), try root.stringAttribute(CheckpointLayout.kind) == kind else {
            throw CheckpointError(file: path, "not a cgt checkpoint (no kind = \"\(kind)\" attribute)")
        }
        let version = try root.intAttribute(CheckpointLayout.layoutVersion)
        guard version == layoutVersion else {
            throw CheckpointError(file: path, "checkpoint layout_version \(version), this cgt reads \(layoutVersion)")
        }
        let job = try JobLoader.parse(try root.stringAttribute(CheckpointLayout.job), source: "\(path): job attribute")
        var checkpoint = Checkpoint(
            job: job, epoch: try root.intAttribute(CheckpointLayout.epoch),
            globalStep: try root.intAttribute(CheckpointLayout.globalStep),
            featureShape: try root.intArrayAttribute(CheckpointLayout.featureShape),
            classNames: try root.stringArrayAttribute(CheckpointLayout.classNames),
            model: [:], batchesTracked: [:], optimizerState: [:], optimizerStepCount: 0)
        let expected = try expectedShapes(of: checkpoint, path: path)
        var counts: [String: Int] = [:]
        checkpoint.model = try readTensors(
            in: try root.openGroup(CheckpointLayout.model), prefix: "", expected: expected, file: path
        ) { name, dataset in
            // The one integer tensor of a model: BatchNorm's scalar step counter.
            guard name.hasSuffix(".\(CheckpointLayout.batchesTracked)"), dataset.shape.isEmpty || dataset.shape == [1]
            else {
                throw CheckpointError(file: path, "\(dataset.path) is not a tensor of the job's network")
            }
            let values = try dataset.readAll(as: Int64.self)
            counts[String(name.dropLast(CheckpointLayout.batchesTracked.count + 1))] = Int(values.first ?? 0)
        }
        checkpoint.batchesTracked = counts
        if root.hasAttribute(CheckpointLayout.exitCriterion) {
            let criterion = try root.stringAttribute(CheckpointLayout.exitCriterion)
            let fallback = try root.stringAttribute(CheckpointLayout.exitFallback)
            let thresholds = try root.doubleArrayAttribute(CheckpointLayout.exitThresholds).map(Float.init)
            guard let c = ExitCriterion(rawValue: criterion), let f = ExitFallback(rawValue: fallback),
                thresholds.count == job.model.exits.count
            else {
                throw CheckpointError(
                    file: path,
                    "exit policy attributes are invalid: exit_criterion '\(criterion)', exit_fallback '\(fallback)', \(thresholds.count) exit_thresholds for \(job.model.exits.count) exits"
                )
            }
            checkpoint.exitPolicy = ExitPolicy(criterion: c, thresholds: thresholds, fallback: f)
        }
        if root.contains(CheckpointLayout.exitClasses) {
            let dataset = try root.openDataset(CheckpointLayout.exitClasses)
            let shape = dataset.shape
            let values = try dataset.readAll(as: Int32.self)
            guard shape.count == 2, shape[0] == job.model.exits.count, shape[1] == checkpoint.classNames.count,
                values.allSatisfy({ $0 == 0 || $0 == 1 }), values.suffix(shape[1]).allSatisfy({ $0 == 1 })
            else {
                throw CheckpointError(
                    file: path,
                    "/\(CheckpointLayout.exitClasses) must be 0/1 of shape [exits, classes] with the last exit answering every class, got shape \(shape)"
                )
            }
            checkpoint.classGroups = ClassGroups(classes: shape[1], membership: values)
        }
        if root.hasAttribute(CheckpointLayout.stepInEpoch) {
            checkpoint.stepInEpoch = try root.intAttribute(CheckpointLayout.stepInEpoch)
            guard checkpoint.stepInEpoch >= 0 else {
                throw CheckpointError(file: path, "epoch_step is \(checkpoint.stepInEpoch), must be at least 0")
            }
        }
        if root.hasAttribute(CheckpointLayout.partialEpoch) {
            let values = try root.doubleArrayAttribute(CheckpointLayout.partialEpoch)
            guard values.count == ExitObjective.Statistics(exits: job.model.exits.count).flattened.count + 2,
                values.allSatisfy({ $0.isFinite && abs($0) < 1e15 })
            else {
                throw CheckpointError(
                    file: path, "epoch_partial is not one epoch's statistics (\(values.count) values)")
            }
            checkpoint.partialEpoch = values
        }
        if root.hasAttribute(CheckpointLayout.epochRanks) {
            checkpoint.epochRanks = try root.intAttribute(CheckpointLayout.epochRanks)
        }
        if root.hasAttribute(CheckpointLayout.dataSHA256) {
            checkpoint.dataSHA256 = try root.stringAttribute(CheckpointLayout.dataSHA256)
        }
        if root.contains(CheckpointLayout.trainingBuffers) {
            checkpoint.trainingBuffers = try readTensors(
                in: try root.openGroup(CheckpointLayout.trainingBuffers), prefix: "", expected: expected, file: path
            ) { _, dataset in throw CheckpointError(file: path, "\(dataset.path) is not a float32 buffer") }
        }
        if root.contains(CheckpointLayout.optimizer) {
            let optimizerGroup = try root.openGroup(CheckpointLayout.optimizer)
            checkpoint.optimizerStepCount = try optimizerGroup.intAttribute(CheckpointLayout.stepCount)
            for state in try optimizerGroup.memberNames() {
                checkpoint.optimizerState[state] = try readTensors(
                    in: try optimizerGroup.openGroup(state), prefix: "", expected: expected, file: path
                ) { _, _ in }
            }
        }
        return checkpoint
    }

    private init(
        job: Job, epoch: Int, globalStep: Int, featureShape: [Int], classNames: [String],
        model: [String: StoredTensor], batchesTracked: [String: Int],
        optimizerState: [String: [String: StoredTensor]], optimizerStepCount: Int
    ) {
        self.job = job
        self.epoch = epoch
        self.globalStep = globalStep
        self.featureShape = featureShape
        self.classNames = classNames
        self.model = model
        self.batchesTracked = batchesTracked
        self.optimizerState = optimizerState
        self.optimizerStepCount = optimizerStepCount
        exitPolicy = Self.defaultPolicy(job)
    }

    /// Every float dataset below `group` by dotted key path; integer datasets go to `integer`.
    /// The name and shape of every parameter and buffer of the network the checkpoint's job
    /// describes, known before any tensor is read: a checkpoint's tensors are checked against
    /// them first, so a file cannot make cgt read (or allocate) what the model does not have.
    private static func expectedShapes(of checkpoint: Checkpoint, path: String) throws -> [String: [Int]] {
        let job = checkpoint.job
        try job.checkInput(featureShape: checkpoint.featureShape, source: "\(path): job attribute")
        guard checkpoint.featureShape.allSatisfy({ $0 > 0 }), checkpoint.classNames.count >= 2,
            checkpoint.classNames.count <= DatasetLayout.maxClasses
        else {
            throw CheckpointError(
                file: path,
                "feature_shape \(checkpoint.featureShape) or \(checkpoint.classNames.count) class_names cannot make a network"
            )
        }
        if let refusal = job.modelSizeRefusal(
            featureShape: checkpoint.featureShape, classes: checkpoint.classNames.count, batch: 1, training: false)
        {
            throw CheckpointError(file: path, "its job: \(refusal)")
        }
        let store = job.makeNetwork(featureShape: checkpoint.featureShape, classes: checkpoint.classNames.count).store
        return Dictionary(uniqueKeysWithValues: (store.parameterSlots + store.bufferSlots).map { ($0.name, $0.shape) })
    }

    private static func readTensors(
        in group: HDF5Group, prefix: String, expected: [String: [Int]], file: String,
        integer: (String, HDF5Dataset) throws -> Void
    ) throws -> [String: StoredTensor] {
        var tensors: [String: StoredTensor] = [:]
        for name in try group.memberNames() {
            let key = prefix.isEmpty ? name : "\(prefix).\(name)"
            if group.isGroup(name) {
                tensors.merge(
                    try readTensors(
                        in: try group.openGroup(name), prefix: key, expected: expected, file: file, integer: integer)
                ) { a, _ in a }
            } else {
                let dataset = try group.openDataset(name)
                if dataset.elementType == .float32 {
                    guard let shape = expected[key] else {
                        throw CheckpointError(file: file, "\(dataset.path) is not a tensor of the job's network")
                    }
                    guard shape == dataset.shape else {
                        throw CheckpointError(
                            file: file, "\(dataset.path) has shape \(dataset.shape), the job's network needs \(shape)")
                    }
                    let values = try dataset.readAll(as: Float.self)
                    // A diverged run's state evaluates to NaN everywhere and resumes into more of it.
                    if let bad = values.firstIndex(where: { !$0.isFinite }) {
                        throw CheckpointError(
                            file: file,
                            "\(dataset.path) holds a non-finite value (\(values[bad]) at index \(bad)): the run diverged before this checkpoint; resume from an earlier one with a lower optimizer.lr"
                        )
                    }
                    tensors[key] = StoredTensor(shape: dataset.shape, values: values)
                } else {
                    try integer(key, dataset)
                }
            }
        }
        return tensors
    }

    /// The group that holds a dotted key path's dataset, created if needed, and the dataset's name.
    private static func parent(of keyPath: String, in root: HDF5Group) throws -> (HDF5Group, String) {
        var parts = keyPath.split(separator: ".").map(String.init)
        let leaf = parts.removeLast()
        let groupPath = parts.joined(separator: "/")
        if groupPath.isEmpty { return (root, leaf) }
        return (root.contains(groupPath) ? try root.openGroup(groupPath) : try root.createGroup(groupPath), leaf)
    }
}

/// The names of a checkpoint file's attributes, groups and datasets, written and read here
/// alone (the layout is documented in `hdf5_data/README.md`).
enum CheckpointLayout {
    // Attributes of the file.
    static let kind = "kind"
    static let layoutVersion = "layout_version"
    static let cgtVersion = "cgt_version"
    /// The resolved job, as YAML.
    static let job = "job"
    static let epoch = "epoch"
    static let globalStep = "global_step"
    static let seed = "seed"
    static let randomState = "random_state"
    static let featureShape = "feature_shape"
    static let classNames = "class_names"
    static let numClasses = "num_classes"
    static let method = "method"
    static let exitCriterion = "exit_criterion"
    static let exitThresholds = "exit_thresholds"
    static let exitFallback = "exit_fallback"
    /// ClassyNet's 0/1 membership `[exits, classes]`.
    static let exitClasses = "exit_classes"
    /// Parameters and buffers by PyTorch's dotted names, as nested groups.
    static let model = "model"
    /// Which BatchNorm statistics `/model` holds: "training" (running averages) or
    /// "re-estimated" (by the evaluation that measured the model, `eval.bn_recalibration`).
    static let batchNormStatistics = "batchnorm_statistics"
    /// Steps taken of the epoch after `epoch` (0: at an epoch's end).
    static let stepInEpoch = "epoch_step"
    /// That epoch's statistics so far: the summed `ExitObjective.Statistics`, then samples and learning rate.
    static let partialEpoch = "epoch_partial"
    /// Ranks that took a mid-epoch checkpoint's steps.
    static let epochRanks = "epoch_ranks"
    /// SHA-256 of the data file trained on.
    static let dataSHA256 = "data_sha256"
    /// Training's running statistics when `/model` holds re-estimated ones, for resuming.
    static let trainingBuffers = "training_buffers"
    /// BatchNorm's step counter, an int64 scalar next to `running_mean`.
    static let batchesTracked = "num_batches_tracked"
    /// Optimizer state: one group per state buffer; attributes `name` and `step_count`.
    static let optimizer = "optimizer"
    static let optimizerName = "name"
    static let stepCount = "step_count"
}
