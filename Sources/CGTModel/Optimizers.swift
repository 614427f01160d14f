import CGTKernels

/// Updates the parameters of a store from its gradients, keeping its own state.
public protocol Optimizer: AnyObject {
    /// Updates taken so far (Adam's t).
    var stepCount: Int { get set }
    /// Named state buffers, each with the parameter buffer's layout ("exp_avg", "momentum_buffer").
    var stateBuffers: [(name: String, values: UnsafeMutableBufferPointer<Float>)] { get }
    /// Updates the parameters in `ranges` (all of them if nil); the others, and their state, stay as they are.
    func step(_ store: ParameterStore, learningRate: Float, ranges: [Range<Int>]?)
}

extension Optimizer {
    public func step(_ store: ParameterStore, learningRate: Float) {
        step(store, learningRate: learningRate, ranges: nil)
    }

    /// Zeroes the state and the step count: a fresh optimizer for the next training stage.
    public func reset() {
        stepCount = 0
        for (_, values) in stateBuffers { values.update(repeating: 0) }
    }
}

/// Calls `body` with each range of the buffers (all of them if `ranges` is nil).
func forEachRange(_ ranges: [Range<Int>]?, count: Int, _ body: (Range<Int>) -> Void) {
    for range in ranges ?? [0..<count] where !range.isEmpty { body(range) }
}

extension UnsafeMutableBufferPointer {
    func slice(_ range: Range<Int>) -> UnsafeMutableBufferPointer { UnsafeMutableBufferPointer(rebasing: self[range]) }
}

/// SGD with momentum, weight decay and optional Nesterov momentum (Sutskever et al., 2013),
/// with `torch.optim.SGD`'s arithmetic.
public final class SGD: Optimizer {
    public let momentum: Float
    public let weightDecay: Float
    public let nesterov: Bool
    public var stepCount = 0
    private let velocity: UnsafeMutableBufferPointer<Float>

    public init(parameterCount: Int, momentum: Float, weightDecay: Float, nesterov: Bool = false) {
        self.momentum = momentum
        self.weightDecay = weightDecay
        self.nesterov = nesterov
        velocity = .allocate(capacity: parameterCount)
        velocity.initialize(repeating: 0)
    }

    deinit { velocity.deallocate() }

    public var stateBuffers: [(name: String, values: UnsafeMutableBufferPointer<Float>)] {
        [("momentum_buffer", velocity)]
    }

    public func step(_ store: ParameterStore, learningRate: Float, ranges: [Range<Int>]?) {
        stepCount += 1
        forEachRange(ranges, count: store.parameterCount) { r in
            OptimizerKernels.sgdStep(
                parameters: store.parameters.slice(r), gradients: UnsafeBufferPointer(store.gradients.slice(r)),
                velocity: velocity.slice(r), learningRate: learningRate, momentum: momentum,
                weightDecay: weightDecay, nesterov: nesterov)
        }
    }
}

/// Adam (Kingma and Ba, 2015), or AdamW with decoupled weight decay (Loshchilov and Hutter, 2019),
/// with `torch.optim.Adam(W)`'s arithmetic.
public final class Adam: Optimizer {
    public let beta1: Float
    public let beta2: Float
    public let epsilon: Float
    public let weightDecay: Float
    public let decoupled: Bool
    public var stepCount = 0
    private let firstMoment: UnsafeMutableBufferPointer<Float>
    private let secondMoment: UnsafeMutableBufferPointer<Float>

    public init(
        parameterCount: Int, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8, weightDecay: Float = 0,
        decoupled: Bool = false
    ) {
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.decoupled = decoupled
        firstMoment = .allocate(capacity: parameterCount)
        secondMoment = .allocate(capacity: parameterCount)
        firstMoment.initialize(repeating: 0)
        secondMoment.initialize(repeating: 0)
    }

    deinit {
        firstMoment.deallocate()
        secondMoment.deallocate()
    }

    public var stateBuffers: [(name: String, values: UnsafeMutableBufferPointer<Float>)] {
        [("exp_avg", firstMoment), ("exp_avg_sq", secondMoment)]
    }

    public func step(_ store: ParameterStore, learningRate: Float, ranges: [Range<Int>]?) {
        stepCount += 1
        forEachRange(ranges, count: store.parameterCount) { r in
            OptimizerKernels.adamStep(
                parameters: store.parameters.slice(r), gradients: UnsafeBufferPointer(store.gradients.slice(r)),
                firstMoment: firstMoment.slice(r), secondMoment: secondMoment.slice(r), learningRate: learningRate,
                beta1: beta1, beta2: beta2, epsilon: epsilon, weightDecay: weightDecay,
                decoupledWeightDecay: decoupled, step: stepCount)
        }
    }
}
