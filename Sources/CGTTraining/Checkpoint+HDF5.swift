import CGTJob
import CGTEvaluation
import CGTHDF5
import CGTModel

extension Checkpoint {
    /// Writes the checkpoint atomically (temporary file, fsync, rename).
    public func write(to path: String) throws {
        let jobText = try JobLoader.yaml(job)
        try writeHDF5Atomically(to: path) { file in
            let root = file.root
            try root.setAttribute("kind", Self.kind)
            try root.setAttribute("layout_version", Self.layoutVersion)
            try root.setAttribute("cgt_version", CGTVersion.current)
            try root.setAttribute("job", jobText)
            try root.setAttribute("epoch", epoch)
            try root.setAttribute("global_step", globalStep)
            try root.setAttribute("seed", Int(truncatingIfNeeded: job.training.seed))
            try root.setAttribute("random_state", "counter-based: shuffle keyed by (seed, epoch), dropout by (seed, epoch, layer, sample id)")
            try root.setAttribute("feature_shape", featureShape)
            try root.setAttribute("class_names", classNames)
            try root.setAttribute("num_classes", classNames.count)
            try root.setAttribute("method", job.method.name.rawValue)
            try root.setAttribute("exit_criterion", exitPolicy.criterion.rawValue)
            try root.setAttribute("exit_thresholds", exitPolicy.thresholds.map(Double.init))
            try root.setAttribute("exit_fallback", exitPolicy.fallback.rawValue)
            if let classGroups {
                try root.writeDataset("exit_classes", classGroups.membership, shape: [classGroups.exits, classGroups.classes])
            }
            let modelGroup = try root.createGroup("model")
            for (name, tensor) in model.sorted(by: { $0.key < $1.key }) {
                let (group, leaf) = try Self.parent(of: name, in: modelGroup)
                try group.writeDataset(leaf, tensor.values, shape: tensor.shape)
            }
            for (prefix, count) in batchesTracked.sorted(by: { $0.key < $1.key }) {
                let (group, leaf) = try Self.parent(of: "\(prefix).num_batches_tracked", in: modelGroup)
                try group.writeDataset(leaf, [Int64(count)], shape: [])
            }
            let optimizerGroup = try root.createGroup("optimizer")
            try optimizerGroup.setAttribute("name", job.optimizer.name.rawValue)
            try optimizerGroup.setAttribute("step_count", optimizerStepCount)
            for (state, tensors) in optimizerState.sorted(by: { $0.key < $1.key }) {
                let stateGroup = try optimizerGroup.createGroup(state)
                for (name, tensor) in tensors.sorted(by: { $0.key < $1.key }) {
                    let (group, leaf) = try Self.parent(of: name, in: stateGroup)
                    try group.writeDataset(leaf, tensor.values, shape: tensor.shape)
                }
            }
        }
    }

    /// Reads a checkpoint written by `write(to:)`.
    public static func read(from path: String) throws -> Checkpoint {
        let file: HDF5File
        do {
            file = try HDF5File.open(path)
        } catch {
            throw CheckpointError(file: path, "cannot open as HDF5 (\(error))")
        }
        defer { try? file.close() }
        let root = file.root
        guard root.hasAttribute("kind"), try root.stringAttribute("kind") == kind else {
            throw CheckpointError(file: path, "not a cgt checkpoint (no kind = \"\(kind)\" attribute)")
        }
        let version = try root.intAttribute("layout_version")
        guard version == layoutVersion else {
            throw CheckpointError(file: path, "checkpoint layout_version \(version), this cgt reads \(layoutVersion)")
        }
        let job = try JobLoader.parse(try root.stringAttribute("job"), source: "\(path): job attribute")
        var checkpoint = Checkpoint(
            job: job, epoch: try root.intAttribute("epoch"), globalStep: try root.intAttribute("global_step"),
            featureShape: try root.intArrayAttribute("feature_shape"), classNames: try root.stringArrayAttribute("class_names"),
            model: [:], batchesTracked: [:], optimizerState: [:], optimizerStepCount: 0)
        var counts: [String: Int] = [:]
        checkpoint.model = try readTensors(in: try root.openGroup("model"), prefix: "") { name, dataset in
            let values = try dataset.readAll(as: Int64.self)
            counts[String(name.dropLast(".num_batches_tracked".count))] = Int(values.first ?? 0)
        }
        checkpoint.batchesTracked = counts
        if root.hasAttribute("exit_criterion") {
            let criterion = try root.stringAttribute("exit_criterion"), fallback = try root.stringAttribute("exit_fallback")
            let thresholds = try root.doubleArrayAttribute("exit_thresholds").map(Float.init)
            guard let c = ExitCriterion(rawValue: criterion), let f = ExitFallback(rawValue: fallback), thresholds.count == job.model.exits.count else {
                throw CheckpointError(file: path, "exit policy attributes are invalid: exit_criterion '\(criterion)', exit_fallback '\(fallback)', \(thresholds.count) exit_thresholds for \(job.model.exits.count) exits")
            }
            checkpoint.exitPolicy = ExitPolicy(criterion: c, thresholds: thresholds, fallback: f)
        }
        if root.contains("exit_classes") {
            let dataset = try root.openDataset("exit_classes")
            let shape = dataset.shape
            let values = try dataset.readAll(as: Int32.self)
            guard shape.count == 2, shape[0] == job.model.exits.count, shape[1] == checkpoint.classNames.count,
                  values.allSatisfy({ $0 == 0 || $0 == 1 }), values.suffix(shape[1]).allSatisfy({ $0 == 1 }) else {
                throw CheckpointError(file: path, "/exit_classes must be 0/1 of shape [exits, classes] with the last exit answering every class, got shape \(shape)")
            }
            checkpoint.classGroups = ClassGroups(classes: shape[1], membership: values)
        }
        if root.contains("optimizer") {
            let optimizerGroup = try root.openGroup("optimizer")
            checkpoint.optimizerStepCount = try optimizerGroup.intAttribute("step_count")
            for state in try optimizerGroup.memberNames() {
                checkpoint.optimizerState[state] = try readTensors(in: try optimizerGroup.openGroup(state), prefix: "") { _, _ in }
            }
        }
        return checkpoint
    }

    private init(job: Job, epoch: Int, globalStep: Int, featureShape: [Int], classNames: [String],
                 model: [String: StoredTensor], batchesTracked: [String: Int],
                 optimizerState: [String: [String: StoredTensor]], optimizerStepCount: Int) {
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
    private static func readTensors(
        in group: HDF5Group, prefix: String, integer: (String, HDF5Dataset) throws -> Void
    ) throws -> [String: StoredTensor] {
        var tensors: [String: StoredTensor] = [:]
        for name in try group.memberNames() {
            let key = prefix.isEmpty ? name : "\(prefix).\(name)"
            if group.isGroup(name) {
                tensors.merge(try readTensors(in: try group.openGroup(name), prefix: key, integer: integer)) { a, _ in a }
            } else {
                let dataset = try group.openDataset(name)
                if dataset.elementType == .float32 {
                    tensors[key] = StoredTensor(shape: dataset.shape, values: try dataset.readAll(as: Float.self))
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
