import CGTKernels
import CGTRandom

/// How a forward pass behaves.
public enum ForwardMode: Sendable {
    /// Batch statistics, running statistics updated with momentum, dropout on.
    case training
    /// Running statistics, dropout off.
    case inference
    /// Batch statistics, running statistics replaced by the average over the pass, dropout off
    /// (the BatchNorm re-estimation before evaluation).
    case recalibration(batchIndex: Int)
}

/// What a forward pass needs besides the input.
public struct ForwardContext {
    public var mode: ForwardMode
    /// The dataset index of every sample in the batch: dropout masks are keyed by it.
    public var sampleIDs: UnsafeBufferPointer<Int64>
    /// The key of this epoch's randomness; each dropout layer mixes in its own index.
    public var randomKey: UInt64

    public init(
        mode: ForwardMode, sampleIDs: UnsafeBufferPointer<Int64> = .init(start: nil, count: 0), randomKey: UInt64 = 0
    ) {
        self.mode = mode
        self.sampleIDs = sampleIDs
        self.randomKey = randomKey
    }

    public var isTraining: Bool { if case .training = mode { return true } else { return false } }
}

/// One differentiable step of a network, with explicit forward and backward passes.
///
/// Tensors are row-major with the batch first; `inputCount` and `outputCount` are the values
/// per sample. A layer caches what its backward pass needs during a training forward.
public protocol Layer: AnyObject {
    /// The attribute name of the layer inside its block ("linear", "bn"): part of checkpoint key paths.
    var name: String { get }
    var inputShape: [Int] { get }
    var outputShape: [Int] { get }

    /// Declares the layer's tensors under `prefix` ("blocks.0.linear").
    func declare(into layout: inout ParameterLayoutBuilder, prefix: String)
    /// Receives the store that holds the declared tensors.
    func bind(to store: ParameterStore)
    /// Sets the store's values to their initial ones.
    func initialize(using generator: inout SeededGenerator)
    /// Allocates caches for batches of up to `maxBatch` samples.
    func reserve(maxBatch: Int)

    func forward(
        _ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>, batch: Int,
        context: ForwardContext)

    /// Writes parameter gradients (overwriting) and, when `inputGradient` is given, the input gradient.
    func backward(
        input: UnsafeBufferPointer<Float>, output: UnsafeBufferPointer<Float>,
        outputGradient: UnsafeBufferPointer<Float>, inputGradient: UnsafeMutableBufferPointer<Float>?,
        batch: Int)

    /// Floating-point operations for one sample at inference (see `hdf5_data/README.md`, "FLOP counts").
    var inferenceFLOPs: Int { get }

    /// What computes the layer's training passes at `batch`, for benchmarks: cgt's SIMD kernels
    /// unless the layer says otherwise.
    func implementation(batch: Int) -> String

    /// The oneDNN primitives the layer's training passes run at `batch`, with oneDNN's
    /// implementation of each; empty for layers computed by cgt's own kernels.
    func primitiveImplementations(batch: Int) -> [PrimitiveImplementation]

    /// The layers a composite layer (a residual block) is made of, under the attribute names
    /// that extend its key path ("conv1", "downsample.0"): how checkpoints find its BatchNorms.
    /// Empty for a plain layer.
    var sublayers: [(name: String, layer: Layer)] { get }
}

extension Layer {
    public var inputCount: Int { inputShape.reduce(1, *) }
    public var outputCount: Int { outputShape.reduce(1, *) }
    public func declare(into layout: inout ParameterLayoutBuilder, prefix: String) {}
    public func bind(to store: ParameterStore) {}
    public func initialize(using generator: inout SeededGenerator) {}
    public func reserve(maxBatch: Int) {}
    public func implementation(batch: Int) -> String { "cgt SIMD kernels" }
    public func primitiveImplementations(batch: Int) -> [PrimitiveImplementation] { [] }
    public var sublayers: [(name: String, layer: Layer)] { [] }
}

/// A cache a layer owns, grown to the largest batch seen and freed with the layer.
final class Cache<Element: Numeric> {
    private(set) var storage = UnsafeMutableBufferPointer<Element>(start: nil, count: 0)

    func reserve(_ count: Int) {
        guard count > storage.count else { return }
        storage.deallocate()
        storage = .allocate(capacity: count)
        storage.initialize(repeating: .zero)
    }

    deinit { storage.deallocate() }
}

/// Activations, gradients and other values a layer keeps between passes.
typealias LayerCache = Cache<Float>
/// The argmax positions a pooling layer keeps for its backward pass.
typealias IndexCache = Cache<Int32>

/// A weight and a bias, their gradients, and where they live in the parameter store:
/// what `Linear` and `Conv2D` share.
struct WeightAndBias {
    private(set) var weightSlot = TensorSlot(name: "", shape: [0], offset: 0)
    private(set) var biasSlot = TensorSlot(name: "", shape: [0], offset: 0)
    private(set) var weight = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    private(set) var bias = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    private(set) var weightGradient = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    private(set) var biasGradient = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)

    /// Declares "<prefix>.weight" with `weightShape` and "<prefix>.bias" with one value per output.
    mutating func declare(into layout: inout ParameterLayoutBuilder, prefix: String, weightShape: [Int]) {
        let outputs = weightShape[0]
        weightSlot = TensorSlot(
            name: "\(prefix).weight", shape: weightShape,
            offset: layout.parameter("\(prefix).weight", shape: weightShape))
        biasSlot = TensorSlot(
            name: "\(prefix).bias", shape: [outputs], offset: layout.parameter("\(prefix).bias", shape: [outputs]))
    }

    mutating func bind(to store: ParameterStore) {
        weight = store.parameter(weightSlot)
        bias = store.parameter(biasSlot)
        weightGradient = store.gradient(weightSlot)
        biasGradient = store.gradient(biasSlot)
    }

    /// PyTorch's default for `nn.Linear` and `nn.Conv2d`: both uniform in +-1/sqrt(fan in)
    /// (Kaiming uniform with a = sqrt(5)).
    func initialize(fanIn: Int, using generator: inout SeededGenerator) {
        let bound = 1 / Float(fanIn).squareRoot()
        for i in weight.indices { weight[i] = generator.uniform(-bound, bound) }
        for i in bias.indices { bias[i] = generator.uniform(-bound, bound) }
    }
}
