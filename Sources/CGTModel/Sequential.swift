import CGTKernels
import CGTRandom

/// Layers applied one after another, with the activations and gradients they pass between them.
///
/// Used for backbone blocks ("blocks.2") and exit heads ("exits.0"); each layer's tensors are
/// named "<prefix>.<layer name>.<tensor>".
public final class Sequential {
    public let layers: [Layer]
    public let prefix: String
    private var activations: [LayerCache] = []
    private var gradients: [LayerCache] = []

    public init(prefix: String, layers: [Layer]) {
        precondition(!layers.isEmpty, "\(prefix) has no layers")
        for (a, b) in zip(layers, layers.dropFirst()) {
            precondition(
                a.outputCount == b.inputCount,
                "\(prefix): \(a.name) gives \(a.outputShape) but \(b.name) takes \(b.inputShape)")
        }
        let names = layers.map(\.name)
        precondition(Set(names).count == names.count, "\(prefix): layer names must be unique, got \(names)")
        self.prefix = prefix
        self.layers = layers
        activations = layers.map { _ in LayerCache() }
        gradients = layers.map { _ in LayerCache() }
    }

    public var inputCount: Int { layers[0].inputCount }
    public var outputCount: Int { layers[layers.count - 1].outputCount }
    public var outputShape: [Int] { layers[layers.count - 1].outputShape }
    public var inferenceFLOPs: Int { layers.reduce(0) { $0 + $1.inferenceFLOPs } }

    /// Every plain layer with its key path ("blocks.1.0.bn1"), inside composite layers too.
    public var leafLayers: [(path: String, layer: Layer)] {
        func leaves(_ path: String, _ layer: Layer) -> [(path: String, layer: Layer)] {
            layer.sublayers.isEmpty
                ? [(path, layer)] : layer.sublayers.flatMap { leaves("\(path).\($0.name)", $0.layer) }
        }
        return layers.flatMap { leaves("\(prefix).\($0.name)", $0) }
    }

    func declare(into layout: inout ParameterLayoutBuilder) {
        for layer in layers { layer.declare(into: &layout, prefix: "\(prefix).\(layer.name)") }
    }

    func bind(to store: ParameterStore) { layers.forEach { $0.bind(to: store) } }

    func initialize(using generator: inout SeededGenerator) {
        for layer in layers { layer.initialize(using: &generator) }
    }

    func reserve(maxBatch: Int) {
        for (i, layer) in layers.enumerated() {
            layer.reserve(maxBatch: maxBatch)
            activations[i].reserve(maxBatch * layer.outputCount)
            gradients[i].reserve(maxBatch * layer.outputCount)
        }
    }

    /// The output of the last forward pass: `batch * outputCount` values.
    public func output(batch: Int) -> UnsafeBufferPointer<Float> {
        activations[layers.count - 1].storage.prefix(count: batch * outputCount)
    }

    /// Where the caller writes the gradient of the output before `backward`.
    public func outputGradient(batch: Int) -> UnsafeMutableBufferPointer<Float> {
        gradients[layers.count - 1].storage.mutablePrefix(count: batch * outputCount)
    }

    public func forward(_ input: UnsafeBufferPointer<Float>, batch: Int, context: ForwardContext) {
        var x = input
        for (i, layer) in layers.enumerated() {
            let y = activations[i].storage.mutablePrefix(count: batch * layer.outputCount)
            layer.forward(x, into: y, batch: batch, context: context)
            x = UnsafeBufferPointer(y)
        }
    }

    /// Back-propagates the gradient in `outputGradient(batch:)` through every layer.
    public func backward(
        input: UnsafeBufferPointer<Float>, inputGradient: UnsafeMutableBufferPointer<Float>?, batch: Int
    ) {
        for i in layers.indices.reversed() {
            let layer = layers[i]
            let x = i == 0 ? input : activations[i - 1].storage.prefix(count: batch * layer.inputCount)
            let dx = i == 0 ? inputGradient : gradients[i - 1].storage.mutablePrefix(count: batch * layer.inputCount)
            layer.backward(
                input: x, output: activations[i].storage.prefix(count: batch * layer.outputCount),
                outputGradient: gradients[i].storage.prefix(count: batch * layer.outputCount),
                inputGradient: dx, batch: batch)
        }
    }
}
