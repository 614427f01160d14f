import CGTModel

/// How the exits' losses are weighted: the method with the options only it takes (`choice`)
/// and the options any method takes. See README.md, "Methods".
///
/// A job file keeps one flat mapping under `method:` (`name`, `tau`, `sharpness`, `weights`,
/// ...). Decoding reads it once into `choice` and refuses, naming the key, every option the
/// named method cannot hold, so nothing past the decoder meets a combination no method runs;
/// encoding writes the same keys back in the same order (`MethodKeys`).
public struct MethodSection: Equatable, Sendable {
    /// The method and its own options; the paper's SoftCGT by default.
    public var choice: MethodChoice = .softCGT(sharpness: 1, score: .maxProbability, spread: nil)
    /// The confidence threshold of the gates (Eq. 3 and 6) and of L2W's meta objective. The
    /// fixed-weight methods and `co` train without it, but take it like every method: the
    /// shipped jobs write it and grids sweep it next to fixed weights.
    public var tau: Float = 0.9
    /// Per-exit factors multiplied into the gates (or fixed weights), annealed linearly over
    /// epochs; default none (the paper).
    public var anneal: AnnealSection? = nil
    /// Added to every active exit's weight on every sample; 0 is the paper (the authors' public
    /// code uses 1e-3).
    public var leak: Float = 0
    /// Divides each sample's weights by their sum over the exits; false is the paper (the
    /// authors' public code normalises).
    public var normalizeWeights: Bool = false
    /// Self-distillation: every exit but the deepest also learns the deepest exit's softened
    /// prediction (BYOT, Zhang et al., ICCV 2019). Default none. Not for `co` or `classynet`.
    public var distillation: DistillationSection? = nil
    /// Gradient equilibrium (IMTA, Li et al., ICCV 2019): each trunk segment follows the mean of
    /// the losses of the exits after it instead of their sum. Default off. Not for `co` or
    /// `classynet`.
    public var gradientEquilibrium: Bool = false
    /// Boosted exits (BoostNet, Yu et al., AAAI 2023): exit e answers with the summed logits of
    /// heads 0...e and trains head e on that sum, the earlier heads' part held fixed. Changes
    /// the model's answers, so evaluation and export follow it. Default off. Not for `co` or
    /// `classynet`.
    public var boosting: Bool = false

    public init() {}

    /// `choice` with every other option at its default.
    public init(_ choice: MethodChoice) { self.choice = choice }

    /// The method's name (`method.name`).
    public var name: TrainingMethod { choice.name }
    /// The fixed lambda_e of `branchynet` and `classynet`; nil for a method that computes its own.
    public var weights: [Float]? { choice.fixedWeights }
    /// The spread the gates get around their mean; nil where they keep their own.
    public var spread: Float? { choice.spread }
}

/// A method with the options only it takes: `method.name` and its keys. An option of another
/// method has no place to go.
public enum MethodChoice: Equatable, Sendable {
    /// HardCGT (Eq. 3-5): a deeper exit learns a sample only while no earlier exit was right
    /// with confidence >= tau. `spread` (`method.spread`) sets the gates' spread around their
    /// mean, each exit's weight becoming 1 + spread (lambda_e(i) - mean_i lambda_e), the
    /// mean-normalised amplitude L2W (Han et al., ECCV 2022) sets explicitly; nil keeps the
    /// gates (the paper).
    case hardCGT(spread: Float?)
    /// SoftCGT (Eq. 6-7), the paper's best: the gates made smooth, r = 1 - sigmoid(k (s - tau))
    /// with sharpness k (`method.sharpness`, 1 in the paper) and score s (`method.score`: the
    /// maximum probability, the paper, or the true-class probability); `spread` as HardCGT's,
    /// with k as the inverse temperature: CGT with a controllable spread.
    case softCGT(sharpness: Float, score: SoftCGT.Score, spread: Float?)
    /// BranchyNet: fixed lambda_e, one per exit (`method.weights`).
    case branchyNet(weights: [Float])
    /// Cascade Optimization: stage e trains the blocks after exit e-1 up to exit e and head e,
    /// everything before frozen. `stageEpochs` (`method.stage_epochs`) gives each stage's
    /// epochs; nil splits `training.epochs` evenly (`Job.trainingPhases`).
    case cascadeOptimization(stageEpochs: [Int]?)
    /// ClassyNet: fixed lambda_e as BranchyNet's, each shallow exit answering a group of
    /// classes and "other" for the rest.
    case classyNet(weights: [Float], groups: ClassGroupSource)
    /// L2W: per-sample weights from a small network (`method.l2w`) trained on a meta objective
    /// that imitates early-exit inference (Han et al., ECCV 2022), spread around their mean by
    /// `spread` (`method.spread`, default `l2wSpread`).
    case l2w(spread: Float, network: L2WSection)

    /// L2W's spread unless the job sets one: the authors' value on CIFAR.
    public static let l2wSpread: Float = 0.8

    /// The name the job file gives the method.
    public var name: TrainingMethod {
        switch self {
        case .hardCGT: .hardCGT
        case .softCGT: .softCGT
        case .branchyNet: .branchyNet
        case .cascadeOptimization: .cascadeOptimization
        case .classyNet: .classyNet
        case .l2w: .l2w
        }
    }

    /// The fixed lambda_e of `branchynet` and `classynet`; nil for a method that computes its own.
    public var fixedWeights: [Float]? {
        switch self {
        case .branchyNet(let weights), .classyNet(let weights, _): weights
        case .hardCGT, .softCGT, .cascadeOptimization, .l2w: nil
        }
    }

    /// The spread the gates get around their mean; nil where they keep their own.
    public var spread: Float? {
        switch self {
        case .hardCGT(let spread), .softCGT(_, _, let spread): spread
        case .l2w(let spread, _): spread
        case .branchyNet, .cascadeOptimization, .classyNet: nil
        }
    }

    /// Shallow exits answer groups of classes and have an "other" output.
    public var groupsClasses: Bool {
        switch self {
        case .classyNet: true
        case .hardCGT, .softCGT, .branchyNet, .cascadeOptimization, .l2w: false
        }
    }

    /// Training runs in stages of its own (one per exit), so it takes no other regime.
    public var trainsInStages: Bool {
        switch self {
        case .cascadeOptimization: true
        case .hardCGT, .softCGT, .branchyNet, .classyNet, .l2w: false
        }
    }
}

/// Where ClassyNet's groups of classes come from.
public enum ClassGroupSource: Equatable, Sendable {
    /// `method.class_groups`: the classes each shallow exit answers, one list per exit but the last.
    case given([[Int]])
    /// Chosen from the training data (`ClassGroups.choose`): `groupSize` classes per shallow
    /// exit (`method.group_size`; nil: ceil(classes / exits)), after `groupingEpochs` epochs of
    /// ordinary training in which every exit learns every class (`method.grouping_epochs`; nil:
    /// a tenth of the epochs). Both defaults depend on more than this section (the data's
    /// classes, `training.epochs`); `Job.classGroupChoice(classes:)` resolves them.
    case chosen(groupSize: Int?, groupingEpochs: Int?)
}

extension MethodSection: Codable {
    public init(from decoder: Decoder) throws {
        let keys = try MethodKeys(from: decoder)
        let path = decoder.codingPath.map(\.stringValue)
        func refuse(_ key: String, _ problem: String) -> Error {
            InvalidValueError(path: path + [key], problem: problem)
        }
        self.init(try MethodChoice(keys, refuse: refuse))
        (tau, anneal, leak, normalizeWeights) = (keys.tau, keys.anneal, keys.leak, keys.normalizeWeights)
        (distillation, gradientEquilibrium, boosting) = (keys.distillation, keys.gradientEquilibrium, keys.boosting)
        let couplings = [
            ("distillation", distillation != nil), ("gradient_equilibrium", gradientEquilibrium),
            ("boosting", boosting),
        ]
        for (key, present) in couplings where present {
            switch choice {
            // Its shallow heads have an extra "other" output that the deepest exit lacks.
            case .classyNet:
                throw refuse(
                    key, "needs every exit to answer the same classes; classynet's shallow exits answer groups")
            // Each stage trains one exit with the ones before it frozen: nothing to couple.
            case .cascadeOptimization:
                throw refuse(key, "co trains one exit at a time; use another method")
            case .hardCGT, .softCGT, .branchyNet, .l2w:
                break
            }
        }
    }

    public func encode(to encoder: Encoder) throws {
        var keys = MethodKeys(choice)
        (keys.tau, keys.anneal, keys.leak, keys.normalizeWeights) = (tau, anneal, leak, normalizeWeights)
        (keys.distillation, keys.gradientEquilibrium, keys.boosting) = (distillation, gradientEquilibrium, boosting)
        try keys.encode(to: encoder)
    }
}

extension MethodChoice {
    /// The method `keys` names, with its options from `keys`; `refuse(key, problem)` makes the
    /// error for a key the method cannot hold.
    fileprivate init(_ keys: MethodKeys, refuse: (String, String) -> Error) throws {
        let name = keys.name
        switch name {
        case .hardCGT:
            self = .hardCGT(spread: keys.spread)
        case .softCGT:
            self = .softCGT(sharpness: keys.sharpness, score: keys.score, spread: keys.spread)
        case .branchyNet:
            guard let weights = keys.weights else { throw refuse("weights", "\(name) needs one fixed weight per exit") }
            self = .branchyNet(weights: weights)
        case .cascadeOptimization:
            self = .cascadeOptimization(stageEpochs: keys.stageEpochs)
        case .classyNet:
            guard let weights = keys.weights else { throw refuse("weights", "\(name) needs one fixed weight per exit") }
            if let groups = keys.classGroups {
                guard keys.groupSize == nil && keys.groupingEpochs == nil else {
                    throw refuse(
                        "class_groups", "given groups leave nothing to choose: drop group_size and grouping_epochs")
                }
                self = .classyNet(weights: weights, groups: .given(groups))
            } else {
                self = .classyNet(
                    weights: weights, groups: .chosen(groupSize: keys.groupSize, groupingEpochs: keys.groupingEpochs))
            }
        case .l2w:
            self = .l2w(spread: keys.spread ?? Self.l2wSpread, network: keys.l2w ?? L2WSection())
        }
        // A key is refused when the method has no place for it: written back, it would be gone.
        // `sharpness` and `score` are written for every method (as job.yaml always has been), so
        // at their defaults they read back whatever the method.
        let kept = MethodKeys(self)
        let defaults = MethodKeys()
        func lost<Value>(_ given: Value?, _ kept: Value?) -> Bool { given != nil && kept == nil }
        var softGates = false
        if case .softCGT = self { softGates = true }
        let options = [
            (
                "weights", lost(keys.weights, kept.weights),
                "only branchynet and classynet use fixed weights; \(name) computes its own"
            ),
            ("stage_epochs", lost(keys.stageEpochs, kept.stageEpochs), "only co trains in stages"),
            ("class_groups", lost(keys.classGroups, kept.classGroups), "only classynet groups classes"),
            ("group_size", lost(keys.groupSize, kept.groupSize), "only classynet groups classes"),
            ("grouping_epochs", lost(keys.groupingEpochs, kept.groupingEpochs), "only classynet groups classes"),
            (
                "sharpness", !softGates && keys.sharpness != defaults.sharpness,
                "only softcgt's gates have a sharpness; \(name) has none"
            ),
            (
                "score", !softGates && keys.score != defaults.score,
                "only softcgt's gates have a score; \(name) has none"
            ),
            // Fixed weights have no spread around their mean: it would make every one of them 1.
            ("spread", lost(keys.spread, kept.spread), "spreads CGT's gates; \(name) has fixed weights"),
            ("l2w", lost(keys.l2w, kept.l2w), "only l2w learns its weights"),
        ]
        for (key, isLost, problem) in options where isLost { throw refuse(key, problem) }
    }
}

/// `method:` as a job file spells it: one flat mapping whose keys belong to different methods.
/// Only `MethodSection` reads and writes it; the key order is job.yaml's.
private struct MethodKeys: JobSection {
    var name: TrainingMethod = .softCGT
    var tau: Float = 0.9
    var sharpness: Float = 1
    var score: SoftCGT.Score = .maxProbability
    var weights: [Float]? = nil
    var stageEpochs: [Int]? = nil
    var classGroups: [[Int]]? = nil
    var groupSize: Int? = nil
    var groupingEpochs: Int? = nil
    var anneal: AnnealSection? = nil
    var leak: Float = 0
    var normalizeWeights: Bool = false
    var spread: Float? = nil
    var distillation: DistillationSection? = nil
    var gradientEquilibrium: Bool = false
    var boosting: Bool = false
    var l2w: L2WSection? = nil

    static let fields: [JobField<MethodKeys>] = [
        .init("name", \.name), .init("tau", \.tau), .init("sharpness", \.sharpness), .init("score", \.score),
        .init("weights", \.weights), .init("stage_epochs", \.stageEpochs), .init("class_groups", \.classGroups),
        .init("group_size", \.groupSize), .init("grouping_epochs", \.groupingEpochs), .init("anneal", \.anneal),
        .init("leak", \.leak), .init("normalize_weights", \.normalizeWeights), .init("spread", \.spread),
        .init("distillation", \.distillation), .init("gradient_equilibrium", \.gradientEquilibrium),
        .init("boosting", \.boosting), .init("l2w", \.l2w),
    ]

    init() {}

    /// The keys of `choice`, every other key at its default.
    init(_ choice: MethodChoice) {
        name = choice.name
        switch choice {
        case .hardCGT(let spread):
            self.spread = spread
        case .softCGT(let sharpness, let score, let spread):
            (self.sharpness, self.score, self.spread) = (sharpness, score, spread)
        case .branchyNet(let weights):
            self.weights = weights
        case .cascadeOptimization(let stageEpochs):
            self.stageEpochs = stageEpochs
        case .classyNet(let weights, .given(let groups)):
            (self.weights, classGroups) = (weights, groups)
        case .classyNet(let weights, .chosen(let groupSize, let groupingEpochs)):
            (self.weights, self.groupSize, self.groupingEpochs) = (weights, groupSize, groupingEpochs)
        case .l2w(let spread, let network):
            (self.spread, l2w) = (spread, network)
        }
    }
}

/// `method.l2w`: L2W's weight prediction network (Han et al., ECCV 2022) and its meta step.
public struct L2WSection: JobSection, Equatable, Sendable {
    /// Width of the network's hidden layer (the authors' code: 100).
    public var hidden: Int = 100
    /// Adam's learning rate for the network (the authors' code: 1e-4 with SGD backbones).
    public var metaLr: Float = 1e-3
    /// A meta step after every this many training steps.
    public var metaInterval: Int = 1
    /// The finite difference's step, relative to the meta gradient's norm (DARTS: 0.01).
    public var finiteDifferenceStep: Float = 0.01

    public static let fields: [JobField<L2WSection>] = [
        .init("hidden", \.hidden), .init("meta_lr", \.metaLr), .init("meta_interval", \.metaInterval),
        .init("finite_difference_step", \.finiteDifferenceStep),
    ]
    public init() {}
}

/// `method.distillation`: L gains alpha T^2 KL(q_deepest || p_e) per sample and shallow exit,
/// both distributions softmax(z / T), the teacher's without gradient.
public struct DistillationSection: JobSection, Equatable, Sendable {
    /// alpha, next to the gated cross-entropy's weights.
    public var weight: Float = 0.5
    /// T; 3 is BYOT's.
    public var temperature: Float = 3

    public static let fields: [JobField<DistillationSection>] = [
        .init("weight", \.weight), .init("temperature", \.temperature),
    ]
    public init() {}
}

/// Per-exit factors on the exit weights that move linearly from `from` (epoch 1) to `to`
/// (reached at `epochs` and held after), as in the authors' public CGT code.
public struct AnnealSection: JobSection, Equatable, Sendable {
    public var from: [Float] = []
    public var to: [Float] = []
    public var epochs: Int = 1

    public static let fields: [JobField<AnnealSection>] = [
        .init("from", \.from), .init("to", \.to), .init("epochs", \.epochs),
    ]
    public init() {}

    /// The factors in epoch `epoch` (0-based).
    public func factors(epoch: Int) -> [Float] {
        let t = Float(min(epoch, epochs)) / Float(max(1, epochs))
        return zip(from, to).map { $0 + ($1 - $0) * t }
    }
}
