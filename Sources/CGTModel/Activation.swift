import CGTKernels

/// max(x, 0), element-wise, on tensors of any shape.
public final class ReLU: Layer {
    public let name = "relu"
    public let inputShape: [Int]
    public init(shape: [Int]) { inputShape = shape }
    public var outputShape: [Int] { inputShape }
    /// One comparison per value.
    public var inferenceFLOPs: Int { inputCount }

    public func forward(
        _ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>, batch: Int,
        context: ForwardContext
    ) {
        Elementwise.reluForward(input.prefix(count: batch * inputCount), output)
    }

    public func backward(
        input: UnsafeBufferPointer<Float>, output: UnsafeBufferPointer<Float>,
        outputGradient: UnsafeBufferPointer<Float>, inputGradient: UnsafeMutableBufferPointer<Float>?, batch: Int
    ) {
        guard let inputGradient else { return }
        Elementwise.reluBackward(
            output: output.prefix(count: batch * inputCount), outputGradient: outputGradient,
            inputGradient: inputGradient)
    }
}

/// Inverted dropout: each value is zeroed with probability p during training and the rest
/// scaled by 1 / (1 - p); at inference it is the identity.
///
/// The mask is a pure function of (seed, epoch, layer index, sample id, feature), so runs on
/// any number of ranks drop the same values.
public final class Dropout: Layer {
    public let name = "dropout"
    public let inputShape: [Int]
    public let probability: Float
    /// Distinguishes this layer's masks from other dropout layers'.
    public let streamIndex: UInt64
    private let mask = LayerCache()

    public init(shape: [Int], probability: Float, streamIndex: UInt64) {
        precondition(probability >= 0 && probability < 1, "dropout probability \(probability) is outside [0, 1)")
        inputShape = shape
        self.probability = probability
        self.streamIndex = streamIndex
    }

    public var outputShape: [Int] { inputShape }
    public var inferenceFLOPs: Int { 0 }
    public func reserve(maxBatch: Int) { mask.reserve(maxBatch * inputCount) }

    public func forward(
        _ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>, batch: Int,
        context: ForwardContext
    ) {
        let n = batch * inputCount
        guard context.isTraining, probability > 0 else {
            _ = output.update(fromContentsOf: input.prefix(n))
            return
        }
        precondition(context.sampleIDs.count == batch, "dropout needs the \(batch) sample ids of the batch")
        let layerKey = DropoutKernels.mix64(context.randomKey ^ DropoutKernels.mix64(streamIndex))
        let m = mask.storage.mutablePrefix(count: n)
        DropoutKernels.fillMask(
            m, sampleIDs: context.sampleIDs, features: inputCount, dropProbability: probability, layerKey: layerKey)
        Elementwise.multiply(input.prefix(count: n), by: UnsafeBufferPointer(m), into: output)
    }

    public func backward(
        input: UnsafeBufferPointer<Float>, output: UnsafeBufferPointer<Float>,
        outputGradient: UnsafeBufferPointer<Float>, inputGradient: UnsafeMutableBufferPointer<Float>?, batch: Int
    ) {
        guard let inputGradient else { return }
        let n = batch * inputCount
        if probability > 0 {
            Elementwise.multiply(
                outputGradient.prefix(count: n), by: mask.storage.prefix(count: n), into: inputGradient)
        } else {
            _ = inputGradient.update(fromContentsOf: outputGradient.prefix(n))
        }
    }
}

extension UnsafeBufferPointer where Element == Float {
    @inlinable
    func prefix(count: Int) -> UnsafeBufferPointer<Float> {
        precondition(count <= self.count, "view of \(count) elements in a buffer of \(self.count)")
        return UnsafeBufferPointer(start: baseAddress, count: count)
    }
}
