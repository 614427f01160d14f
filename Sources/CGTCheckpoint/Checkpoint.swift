import CGTData
import CGTFiles
import CGTHDF5
import CGTJob
import CGTModel

/// One named tensor of a checkpoint.
public struct StoredTensor: Equatable, Sendable {
    public var shape: [Int]
    public var values: [Float]

    /// Every parameter of `store` by key path.
    static func parameters(of store: ParameterStore) -> [String: StoredTensor] {
        Dictionary(
            uniqueKeysWithValues: store.parameterSlots.map {
                ($0.name, StoredTensor(shape: $0.shape, values: Array(store.parameter($0))))
            })
    }

    /// An optimizer's state buffers (laid out as `store`'s parameters) by state name, then key path.
    static func optimizerState(of optimizer: Optimizer?, along store: ParameterStore) -> [String: [String:
        StoredTensor]]
    {
        Dictionary(
            uniqueKeysWithValues: (optimizer?.stateBuffers ?? []).map { name, values in
                (
                    name,
                    Dictionary(
                        uniqueKeysWithValues: store.parameterSlots.map { slot in
                            (
                                slot.name,
                                StoredTensor(
                                    shape: slot.shape, values: Array(values[slot.offset..<(slot.offset + slot.count)]))
                            )
                        })
                )
            })
    }

    /// Copies `table` into `store`'s parameters; `group` and `source` name a missing or
    /// misshapen tensor in errors.
    static func restoreParameters(
        _ table: [String: StoredTensor], into store: ParameterStore, group: String, source: String
    ) throws {
        for slot in store.parameterSlots {
            _ = store.parameter(slot).update(fromContentsOf: try value(table, slot, group: group, source: source))
        }
    }

    /// Copies stored optimizer state (`optimizerState(of:along:)`) into `optimizer`, whose
    /// buffers are laid out as `store`'s parameters.
    static func restoreOptimizer(
        _ state: [String: [String: StoredTensor]], stepCount: Int, into optimizer: Optimizer,
        along store: ParameterStore, group: String, source: String
    ) throws {
        for (name, buffer) in optimizer.stateBuffers {
            guard let table = state[name] else {
                throw CheckpointError(file: source, "\(group) state '\(name)' is missing")
            }
            for slot in store.parameterSlots {
                let values = try value(table, slot, group: "\(group)/\(name)", source: source)
                _ = UnsafeMutableBufferPointer(rebasing: buffer[slot.offset..<(slot.offset + slot.count)]).update(
                    fromContentsOf: values)
            }
        }
        optimizer.stepCount = stepCount
    }

    /// The values `table` stores for `slot`, checked against its shape; `group` and `source` name it in errors.
    static func value(_ table: [String: StoredTensor], _ slot: TensorSlot, group: String, source: String) throws
        -> [Float]
    {
        guard let stored = table[slot.name] else {
            throw CheckpointError(file: source, "\(group)/\(slot.name) is missing")
        }
        guard stored.shape == slot.shape, stored.values.count == slot.count else {
            throw CheckpointError(
                file: source, "\(group)/\(slot.name) has shape \(stored.shape), the network needs \(slot.shape)")
        }
        return stored.values
    }
}

/// A training state in HDF5, in PyTorch's naming (see `hdf5_data/README.md`, "Checkpoints").
///
/// `/model/<key path>` holds every parameter and buffer ("blocks.0.linear.weight" is
/// `/model/blocks/0/linear/weight`), `/optimizer/<state>/<key path>` the optimizer's state,
/// and root attributes the resolved job, epoch and step. Shuffles and dropout masks are
/// counter-based, keyed by (seed, epoch, sample), so seed and epoch are the whole random state.
public struct Checkpoint: Equatable {
    public static let kind = "cgt-checkpoint"
    public static let layoutVersion = 1

    public var job: Job
    /// Epochs completed.
    public var epoch: Int
    /// Optimizer steps taken.
    public var globalStep: Int
    /// Where a stop signal left the epoch after `epoch`, in a checkpoint it made mid-epoch
    /// (`checkpoints/interrupted.h5`); nil at an epoch's end.
    public var partialEpoch: PartialEpoch?
    /// Steps of the epoch after `epoch` already taken (0 at an epoch's end).
    public var stepInEpoch: Int { partialEpoch?.step ?? 0 }
    public var featureShape: [Int]
    public var classNames: [String]
    /// Every parameter and buffer by key path: the model evaluation measured, to deploy as is.
    public var model: [String: StoredTensor]
    /// BatchNorm running statistics as training left them, when `model` holds the ones an
    /// evaluation re-estimated (`eval.bn_recalibration`); resuming continues from these, so a
    /// resumed run is the uninterrupted one. Nil: `model`'s buffers are training's.
    public var trainingBuffers: [String: StoredTensor]?
    /// `num_batches_tracked` of each BatchNorm by its prefix ("blocks.0.bn").
    public var batchesTracked: [String: Int]
    /// Optimizer state buffers by state name ("exp_avg"), then key path.
    public var optimizerState: [String: [String: StoredTensor]]
    public var optimizerStepCount: Int
    /// ClassyNet's exit policy once chosen: which classes each exit answers (`/exit_classes`).
    public var classGroups: ClassGroups?
    /// The exit policy the model is deployed with (attributes `exit_criterion`, `exit_thresholds`,
    /// `exit_fallback`): the job's eval.tau at every exit until `cgt eval --save-policy` sets one.
    public var exitPolicy: ExitPolicy

    /// L2W's weight network, its optimizer and meta batch (`method.name: l2w` only).
    public var l2w: L2WState?

    /// SHA-256 of the data file the model trained on (attribute `data_sha256`), when known:
    /// the data's identity wherever the file lies.
    public var dataSHA256: String?

    /// The policy a checkpoint of `job` starts with.
    public static func defaultPolicy(_ job: Job) -> ExitPolicy { .uniform(job.eval.tau, exits: job.model.exits.count) }

    /// Captures the state of a run.
    /// - Parameter evaluatedBuffers: the network's buffers as an evaluation re-estimated them
    ///   (the store's buffer layout); stored as the model's, with the network's own kept for resuming.
    public init(
        job: Job, epoch: Int, globalStep: Int, featureShape: [Int], classNames: [String],
        network: EarlyExitNetwork, optimizer: Optimizer?, classGroups: ClassGroups? = nil,
        evaluatedBuffers: [Float]? = nil, dataSHA256: String? = nil
    ) {
        self.dataSHA256 = dataSHA256
        self.classGroups = classGroups
        exitPolicy = Self.defaultPolicy(job)
        self.job = job
        self.epoch = epoch
        self.globalStep = globalStep
        self.featureShape = featureShape
        self.classNames = classNames
        let store = network.store
        var model = StoredTensor.parameters(of: store)
        var training: [String: StoredTensor] = [:]
        for slot in store.bufferSlots {
            training[slot.name] = StoredTensor(shape: slot.shape, values: Array(store.buffer(slot)))
        }
        if let evaluatedBuffers, !store.bufferSlots.isEmpty {
            precondition(evaluatedBuffers.count == store.buffers.count, "buffers of another network")
            for slot in store.bufferSlots {
                model[slot.name] = StoredTensor(
                    shape: slot.shape, values: Array(evaluatedBuffers[slot.offset..<(slot.offset + slot.count)]))
            }
            trainingBuffers = training
        } else {
            model.merge(training) { a, _ in a }
            trainingBuffers = nil
        }
        self.model = model
        batchesTracked = Dictionary(
            uniqueKeysWithValues: Self.batchNorms(of: network).map { ($0.0, $0.1.batchesTracked) })
        optimizerState = StoredTensor.optimizerState(of: optimizer, along: store)
        optimizerStepCount = optimizer?.stepCount ?? 0
    }

    /// Every parameter and buffer as training left them (with `trainingBuffers` over the
    /// model's re-estimated ones): the state a resumed run continues from.
    public var trainingState: [String: StoredTensor] {
        model.merging(trainingBuffers ?? [:]) { _, training in training }
    }

    /// Which BatchNorm statistics the model holds: "training" or "re-estimated" (by an evaluation).
    public var batchNormStatistics: String { trainingBuffers == nil ? "training" : "re-estimated" }

    /// This checkpoint with `network`'s buffers (re-estimated by an evaluation) as the model's;
    /// training's own stay stored for resuming.
    public func withEvaluatedBuffers(of network: EarlyExitNetwork) -> Checkpoint {
        let store = network.store
        var copy = self
        guard !store.bufferSlots.isEmpty else { return copy }
        if copy.trainingBuffers == nil {
            copy.trainingBuffers = model.filter { name, _ in store.bufferSlots.contains { $0.name == name } }
        }
        for slot in store.bufferSlots {
            copy.model[slot.name] = StoredTensor(shape: slot.shape, values: Array(store.buffer(slot)))
        }
        return copy
    }

    static func batchNorms(of network: EarlyExitNetwork) -> [(String, BatchNorm)] {
        (network.blocks + network.exits).flatMap { part in
            part.leafLayers.compactMap { path, layer in (layer as? BatchNorm).map { (path, $0) } }
        }
    }

    /// The stored network, built for `reader`'s data after checking that its samples and
    /// classes are the ones the checkpoint was trained on (`dataPath` names the data in errors).
    public func restoredNetwork(for reader: DatasetReader, dataPath: String, source: String) throws -> EarlyExitNetwork
    {
        guard reader.featureShape == featureShape else {
            throw DatasetError(
                file: dataPath, object: "/",
                "feature_shape \(reader.featureShape) differs from the checkpoint's \(featureShape)")
        }
        guard reader.classes == classNames.count else {
            throw DatasetError(
                file: dataPath, object: "/",
                "num_classes \(reader.classes) differs from the checkpoint's \(classNames.count)")
        }
        if let problem = classNameMismatch(reader) { throw DatasetError(file: dataPath, object: "/", problem) }
        if let refusal = job.modelSizeRefusal(
            featureShape: featureShape, classes: classNames.count, batch: 1, training: false)
        {
            throw CheckpointError(file: source, "its job: \(refusal)")
        }
        let network = job.makeNetwork(featureShape: reader.featureShape, classes: reader.classes)
        try restore(into: network, optimizer: nil, source: source)
        return network
    }

    /// Why `reader`'s classes are not the checkpoint's, in words, or nil: label k must mean the
    /// class the network learned as k, so names in another order (or other names) would score
    /// every prediction against another class without a word. A file without `class_names` has
    /// nothing to compare; nor has a checkpoint trained on one (it stores "class 0", ...),
    /// unless the file's names are those in another order.
    func classNameMismatch(_ reader: DatasetReader) -> String? {
        let sameSet = Set(reader.classNames) == Set(classNames)
        let unnamed = (0..<classNames.count).map { "class \($0)" }
        guard reader.namesClasses, classNames != unnamed || sameSet,
            let k = classNames.indices.first(where: { reader.classNames[$0] != classNames[$0] })
        else { return nil }
        let given = "class \(k) is '\(reader.classNames[k])' here and '\(classNames[k])' in the checkpoint"
        if sameSet {
            return "class_names are the checkpoint's in another order (\(given)): its labels would mean other classes"
        }
        return "class_names differ from the checkpoint's (\(given)): not the classes it was trained on"
    }

    /// Copies the stored state into a network built from `job`, and into its optimizer.
    /// Names and shapes must match exactly; `source` names the file in errors.
    ///
    /// With an optimizer (resuming) the buffers are training's own (`trainingBuffers` when
    /// stored); without one, the model's, which evaluation measured.
    public func restore(into network: EarlyExitNetwork, optimizer: Optimizer?, source: String) throws {
        let store = network.store
        func tensor(_ table: [String: StoredTensor], _ slot: TensorSlot, _ group: String) throws -> [Float] {
            try StoredTensor.value(table, slot, group: group, source: source)
        }
        try StoredTensor.restoreParameters(model, into: store, group: CheckpointLayout.model, source: source)
        let buffers = optimizer != nil ? trainingBuffers : nil
        for slot in store.bufferSlots {
            _ = store.buffer(slot).update(
                fromContentsOf: try buffers.map { try tensor($0, slot, CheckpointLayout.trainingBuffers) }
                    ?? tensor(model, slot, CheckpointLayout.model))
        }
        for (prefix, layer) in Self.batchNorms(of: network) { layer.setBatchesTracked(batchesTracked[prefix] ?? 0) }
        guard let optimizer else { return }
        try StoredTensor.restoreOptimizer(
            optimizerState, stepCount: optimizerStepCount, into: optimizer, along: store,
            group: CheckpointLayout.optimizer, source: source)
    }
}

/// A checkpoint file cgt cannot use.
public struct CheckpointError: LocatedError {
    public let file: String
    public let problem: String
    public init(file: String, _ problem: String) {
        self.file = file
        self.problem = problem
    }
    public var location: [String] { [file] }
}

/// The version string written into files cgt makes.
public enum CGTVersion {
    public static let current = "0.1.0"
}
