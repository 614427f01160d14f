import CGTData
import CGTFiles
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
            try Self.writeTensors(model, in: modelGroup)
            try root.setAttribute(CheckpointLayout.batchNormStatistics, batchNormStatistics)
            if let dataSHA256 { try root.setAttribute(CheckpointLayout.dataSHA256, dataSHA256) }
            try root.setAttribute(CheckpointLayout.stepInEpoch, stepInEpoch)
            if let partialEpoch {
                try root.setAttribute(CheckpointLayout.partialEpoch, partialEpoch.flattened)
                try root.setAttribute(CheckpointLayout.epochRanks, partialEpoch.ranks)
                if partialEpoch.bufferRows > 0 {
                    try root.setAttribute(CheckpointLayout.epochBufferRows, partialEpoch.bufferRows)
                }
            }
            if let trainingBuffers {
                try Self.writeTensors(trainingBuffers, in: try root.createGroup(CheckpointLayout.trainingBuffers))
            }
            for (prefix, count) in batchesTracked.sorted(by: { $0.key < $1.key }) {
                let (group, leaf) = try Self.parent(of: "\(prefix).\(CheckpointLayout.batchesTracked)", in: modelGroup)
                try group.writeDataset(leaf, [Int64(count)], shape: [])
            }
            SignalDrill.reached(.checkpoint)
            try Self.writeOptimizer(
                optimizerState, name: job.optimizer.name.rawValue, stepCount: optimizerStepCount, in: root)
            if let l2w { try Self.write(l2w, featureCount: featureShape.reduce(1, *), in: root) }
        }
    }

    /// `/l2w`: the weight network as `model/`, its optimizer as `optimizer/` (as the backbone's),
    /// the step count, and the meta batch.
    private static func write(_ state: L2WState, featureCount: Int, in root: HDF5Group) throws {
        let group = try root.createGroup(CheckpointLayout.l2w)
        try group.setAttribute(CheckpointLayout.l2wSteps, state.steps)
        try writeTensors(state.parameters, in: try group.createGroup(CheckpointLayout.model))
        try writeOptimizer(state.optimizerState, name: nil, stepCount: state.optimizerStepCount, in: group)
        guard let batch = state.metaBatch else { return }
        let meta = try group.createGroup(CheckpointLayout.metaBatch)
        try meta.writeDataset(CheckpointLayout.metaFeatures, batch.features, shape: [batch.labels.count, featureCount])
        try meta.writeDataset(CheckpointLayout.metaLabels, batch.labels, shape: [batch.labels.count])
        try meta.writeDataset(CheckpointLayout.metaSampleIDs, batch.sampleIDs, shape: [batch.sampleIDs.count])
        try meta.setAttribute(CheckpointLayout.metaRankRows, batch.rankRows)
        try meta.setAttribute(CheckpointLayout.metaGlobalCount, batch.globalCount)
        try meta.setAttribute(CheckpointLayout.metaRandomKey, Int(Int64(bitPattern: batch.randomKey)))
    }

    /// Every tensor below `root`, key path dots as groups.
    private static func writeTensors(_ tensors: [String: StoredTensor], in root: HDF5Group) throws {
        for (name, tensor) in tensors.sorted(by: { $0.key < $1.key }) {
            let (group, leaf) = try parent(of: name, in: root)
            try group.writeDataset(leaf, tensor.values, shape: tensor.shape)
        }
    }

    /// `optimizer/` below `parent`: one group of tensors per state buffer, `step_count`, and
    /// the optimizer's `name` when given.
    private static func writeOptimizer(
        _ state: [String: [String: StoredTensor]], name: String?, stepCount: Int, in parent: HDF5Group
    ) throws {
        let group = try parent.createGroup(CheckpointLayout.optimizer)
        if let name { try group.setAttribute(CheckpointLayout.optimizerName, name) }
        try group.setAttribute(CheckpointLayout.stepCount, stepCount)
        for (buffer, tensors) in state.sorted(by: { $0.key < $1.key }) {
            try writeTensors(tensors, in: try group.createGroup(buffer))
        }
    }

    /// `optimizer/` below `parent` as `writeOptimizer` wrote it, each tensor checked against
    /// `expected`; an integer dataset goes to `integer`.
    private static func readOptimizer(
        in parent: HDF5Group, expected: [String: [Int]], path: String,
        integer: (String, HDF5Dataset) throws -> Void
    ) throws -> (state: [String: [String: StoredTensor]], stepCount: Int) {
        let group = try parent.openGroup(CheckpointLayout.optimizer)
        var state: [String: [String: StoredTensor]] = [:]
        for name in try group.memberNames() {
            state[name] = try readTensors(
                in: try group.openGroup(name), prefix: "", expected: expected, file: path, integer: integer)
        }
        return (state, try group.intAttribute(CheckpointLayout.stepCount))
    }

    /// Reads `/l2w`, checking every tensor against the weight network `job` describes.
    private static func readL2W(in root: HDF5Group, job: Job, featureCount: Int, classes: Int, path: String) throws
        -> L2WState
    {
        let group = try root.openGroup(CheckpointLayout.l2w)
        guard case .l2w(_, let settings) = job.method.choice else {
            throw CheckpointError(file: path, "/\(CheckpointLayout.l2w) is there, but the job's method is not l2w")
        }
        let weights = job.makeWeightNetwork(settings)
        let expected = Dictionary(uniqueKeysWithValues: weights.store.parameterSlots.map { ($0.name, $0.shape) })
        let noIntegers: (String, HDF5Dataset) throws -> Void = { _, dataset in
            throw CheckpointError(file: path, "\(dataset.path) is not a float32 tensor")
        }
        let parameters = try readTensors(
            in: try group.openGroup(CheckpointLayout.model), prefix: "", expected: expected, file: path,
            integer: noIntegers)
        let optimizer = try readOptimizer(in: group, expected: expected, path: path, integer: noIntegers)
        var state = L2WState(
            parameters: parameters, optimizerState: optimizer.state, optimizerStepCount: optimizer.stepCount,
            steps: try group.intAttribute(CheckpointLayout.l2wSteps), metaBatch: nil)
        guard state.steps >= 0, state.optimizerStepCount >= 0 else {
            throw CheckpointError(file: path, "/\(CheckpointLayout.l2w) step counts must not be negative")
        }
        guard group.contains(CheckpointLayout.metaBatch) else { return state }
        let meta = try group.openGroup(CheckpointLayout.metaBatch)
        let labels = try meta.openDataset(CheckpointLayout.metaLabels)
        let rows = labels.shape.first ?? 0
        let rankRows = try meta.intArrayAttribute(CheckpointLayout.metaRankRows)
        let features = try meta.openDataset(CheckpointLayout.metaFeatures)
        let ids = try meta.openDataset(CheckpointLayout.metaSampleIDs)
        let globalCount = try meta.intAttribute(CheckpointLayout.metaGlobalCount)
        // One training step's rows: at most a global batch and the remainder the epoch's last step takes.
        guard labels.shape == [rows], features.shape == [rows, featureCount], ids.shape == [rows],
            features.elementType == .float32, labels.elementType == .int32, ids.elementType == .int64,
            rows > 0, rows < 2 * job.training.batchSize, rankRows.allSatisfy({ $0 >= 0 }),
            rankRows.reduce(0, +) == rows, globalCount == rows
        else {
            throw CheckpointError(
                file: path,
                "/\(CheckpointLayout.l2w)/\(CheckpointLayout.metaBatch) is not one batch of \(featureCount) features per row (labels \(labels.shape), features \(features.shape), rank_rows \(rankRows), global_count \(globalCount))"
            )
        }
        let values = try features.readAll(as: Float.self)
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw CheckpointError(file: path, "\(features.path) holds a non-finite value at index \(bad)")
        }
        let classLabels = try labels.readAll(as: Int32.self)
        if let bad = classLabels.first(where: { $0 < 0 || Int($0) >= classes }) {
            throw CheckpointError(file: path, "\(labels.path) holds label \(bad), not one of the \(classes) classes")
        }
        state.metaBatch = MetaBatch(
            features: values, labels: classLabels, sampleIDs: try ids.readAll(as: Int64.self),
            rankRows: rankRows, globalCount: globalCount,
            randomKey: UInt64(bitPattern: Int64(try meta.intAttribute(CheckpointLayout.metaRandomKey))))
        return state
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
        let step =
            root.hasAttribute(CheckpointLayout.stepInEpoch) ? try root.intAttribute(CheckpointLayout.stepInEpoch) : 0
        guard step >= 0 else { throw CheckpointError(file: path, "epoch_step is \(step), must be at least 0") }
        if step > 0 {
            guard root.hasAttribute(CheckpointLayout.partialEpoch), root.hasAttribute(CheckpointLayout.epochRanks)
            else {
                throw CheckpointError(file: path, "epoch_step is \(step) but epoch_partial or epoch_ranks is missing")
            }
            let values = try root.doubleArrayAttribute(CheckpointLayout.partialEpoch)
            let ranks = try root.intAttribute(CheckpointLayout.epochRanks)
            let bufferRows =
                root.hasAttribute(CheckpointLayout.epochBufferRows)
                ? try root.intAttribute(CheckpointLayout.epochBufferRows) : 0
            guard
                let partial = PartialEpoch(
                    step: step, ranks: ranks, bufferRows: bufferRows, flattened: values,
                    exits: job.model.exits.count)
            else {
                throw CheckpointError(
                    file: path,
                    "epoch_partial is not one epoch's statistics (\(values.count) values), epoch_ranks \(ranks) is not positive or epoch_buffer_rows \(bufferRows) is negative"
                )
            }
            checkpoint.partialEpoch = partial
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
            (checkpoint.optimizerState, checkpoint.optimizerStepCount) = try readOptimizer(
                in: root, expected: expected, path: path, integer: { _, _ in })
        }
        if root.contains(CheckpointLayout.l2w) {
            checkpoint.l2w = try readL2W(
                in: root, job: job, featureCount: checkpoint.featureShape.reduce(1, *),
                classes: checkpoint.classNames.count, path: path)
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

    /// Every float dataset below `group` by dotted key path; integer datasets go to `integer`.
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
