import CGTModel

/// A closed set that a job key names by a string (`method.name: softcgt`).
///
/// Decoding an unknown name fails with the key and the known names, so nothing later has to
/// guess what an unchecked string meant; encoding writes the name back, so a resolved job
/// reads as the file did, and messages print the name.
public protocol JobChoice: RawRepresentable, CaseIterable, Codable, Sendable, CustomStringConvertible
where RawValue == String {
    /// What one value is called in an error message ("method", "optimizer").
    static var noun: String { get }
}

extension JobChoice {
    public init(from decoder: Decoder) throws {
        let name = try decoder.singleValueContainer().decode(String.self)
        guard let value = Self(rawValue: name) else {
            throw InvalidValueError(
                path: decoder.codingPath.map(\.stringValue),
                problem: "unknown \(Self.noun) '\(name)' (known: \(Self.known))")
        }
        self = value
    }

    /// The name as the job file writes it, also in messages.
    public var description: String { rawValue }

    /// The names, comma-separated, in declaration order.
    public static var known: String { allCases.map(\.rawValue).joined(separator: ", ") }
}

/// The name of a method (`method.name`); `MethodChoice` carries the method with its options.
/// See README.md, "Methods".
public enum TrainingMethod: String, JobChoice {
    /// HardCGT: a deeper exit learns a sample only when every earlier exit was not confident (Eq. 3).
    case hardCGT = "hardcgt"
    /// SoftCGT: the same gates made smooth (Eq. 6); the paper's best.
    case softCGT = "softcgt"
    /// BranchyNet: fixed weights per exit.
    case branchyNet = "branchynet"
    /// Cascade Optimization: one exit per stage, everything before it frozen.
    case cascadeOptimization = "co"
    /// ClassyNet: shallow exits answer a group of classes, the rest goes on as "other".
    case classyNet = "classynet"
    /// L2W: per-sample weights from a small network trained on a meta objective that imitates
    /// early-exit inference (Han et al., ECCV 2022).
    case l2w

    public static let noun = "method"
}

/// The backbone (`model.kind`).
public enum ModelKind: String, JobChoice {
    /// The paper's Indian Pines backbone: Dense -> BatchNorm -> ReLU -> Dropout blocks.
    case mlp
    /// The paper's Fashion-MNIST backbone: Conv -> BatchNorm -> ReLU -> MaxPool blocks.
    case cnn
    /// A residual backbone: a stem, then stages of basic residual blocks (`ResNetArchitecture`).
    case resnet

    public static let noun = "model"
}

/// Which parts train when (`training.regime`).
public enum TrainingRegime: String, JobChoice {
    /// Everything from the start (the paper).
    case joint
    /// The backbone with its last exit first, then only the other heads on the frozen backbone.
    case disjoint
    /// The backbone first, then everything jointly (arXiv 2407.14320).
    case mixed

    public static let noun = "regime"
}

/// How the training split is dealt to the ranks each epoch (`training.shuffle`).
public enum ShuffleMode: String, JobChoice {
    /// Every rank reads its part of each global batch: N ranks see exactly the batches of 1,
    /// and each reads nearly the whole split every epoch.
    case global
    /// Each rank reads one contiguous shard once and shuffles within it.
    case local
    /// The default. Chunks permuted globally each epoch and dealt to the ranks as contiguous
    /// pieces: about 1/R of the split read per rank per epoch, every sample once per epoch,
    /// batches a function of (seed, epoch, R) (`BlockShufflePlan`).
    case blocks

    public static let noun = "mode"
}

/// The optimizer (`optimizer.name`).
public enum OptimizerKind: String, JobChoice {
    /// Stochastic gradient descent with momentum (optionally Nesterov).
    case sgd
    /// Adam, weight decay added to the gradient.
    case adam
    /// Adam with decoupled weight decay (Loshchilov and Hutter, 2019).
    case adamw

    public static let noun = "optimizer"
}

/// The learning-rate curve after the warm-up (`schedule.name`).
public enum ScheduleKind: String, JobChoice {
    case constant
    /// x gamma every `step_size` epochs.
    case step
    /// Cosine annealing to `min_lr`.
    case cosine

    public static let noun = "schedule"
}

extension SelectionMetric: JobChoice {
    public static let noun = "metric"
}

extension SoftCGT.Score: JobChoice {
    public static let noun = "score"
}

/// A signal that stops training at a checkpoint (`runtime.stop_signals`), by its name without "SIG".
public enum StopSignal: String, JobChoice {
    case term = "TERM"
    case usr1 = "USR1"
    case usr2 = "USR2"
    case int = "INT"
    public static let noun = "signal"
}
