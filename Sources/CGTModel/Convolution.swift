import CGTKernels
import CGTRandom

/// A stride-1 2-D convolution with zero padding `k / 2`, as PyTorch's `nn.Conv2d(in, out, k, padding=k // 2)`.
///
/// Maps are `[N, C, H, W]` in the memory order of `inputLayout` and `outputLayout` (the CNN
/// keeps its trunk channels-last); the weight is stored `[out, in, kh, kw]` and the bias
/// `[out]` whatever the layouts, so checkpoints load into PyTorch unchanged. The passes run on oneDNN's convolution kernels
/// (`ConvolutionPrimitives`), made once per batch size: the training batch and the epoch's last
/// partial batch; a forward pass at a size not made yet runs in power-of-two pieces.
///
/// Inference FLOPs per sample: `2 * in * kh * kw * out * Hout * Wout` (a multiply-add counts 2)
/// plus `out * Hout * Wout` for the bias.
public final class Conv2D: Layer {
    public let name = "conv"
    public let geometry: ConvolutionKernels.Geometry
    public let outputChannels: Int
    public let inputLayout: MapLayout
    public let outputLayout: MapLayout
    /// Whether `backward` can compute the input's gradient: the network's first layer never
    /// needs it (oneDNN then makes no backward-data pass, which for a one-channel input into
    /// blocked maps is only its slow reference kernel).
    public let computesInputGradient: Bool
    private var parameters = WeightAndBias()
    private var weight: UnsafeMutableBufferPointer<Float> { parameters.weight }
    private var bias: UnsafeMutableBufferPointer<Float> { parameters.bias }
    private var weightGradient: UnsafeMutableBufferPointer<Float> { parameters.weightGradient }
    private var biasGradient: UnsafeMutableBufferPointer<Float> { parameters.biasGradient }
    /// oneDNN's primitives per batch size; few sizes occur in a run.
    private var primitives: [Int: ConvolutionPrimitives] = [:]

    /// - Parameters:
    ///   - inputShape: `[channels, height, width]`.
    ///   - kernelSize: an odd k, so that the padding k / 2 keeps H and W.
    ///   - inputLayout, outputLayout: the memory order of the maps this layer reads and writes.
    ///   - computesInputGradient: false for a network's first layer.
    public init(
        inputShape: [Int], outputChannels: Int, kernelSize: Int = 3,
        inputLayout: MapLayout = .channelsFirst, outputLayout: MapLayout = .channelsFirst,
        computesInputGradient: Bool = true
    ) {
        precondition(
            inputShape.count == 3 && inputShape.allSatisfy { $0 > 0 },
            "Conv2D takes [channels, height, width], got \(inputShape)")
        precondition(outputChannels > 0, "Conv2D needs a positive number of output channels, got \(outputChannels)")
        precondition(kernelSize > 0 && kernelSize % 2 == 1, "Conv2D needs an odd kernel size, got \(kernelSize)")
        geometry = Self.geometry(inputShape: inputShape, kernelSize: kernelSize)
        self.outputChannels = outputChannels
        self.inputLayout = inputLayout
        self.outputLayout = outputLayout
        self.computesInputGradient = computesInputGradient
    }

    /// The geometry of a layer with this input and kernel: padding k / 2, stride 1.
    public static func geometry(inputShape: [Int], kernelSize: Int) -> ConvolutionKernels.Geometry {
        ConvolutionKernels.Geometry(
            channels: inputShape[0], height: inputShape[1], width: inputShape[2], kernelHeight: kernelSize,
            kernelWidth: kernelSize)
    }

    /// The layout `MapLayoutChoice` picks for the maps this layer would write in `trunk` from
    /// `inputShape` in `inputLayout` (nil: the same as the output's), with a BatchNorm after it
    /// if `batchNorm` and a `thenKernelSize` convolution of the same channels after that if given.
    public static func outputLayout(
        of trunk: MapLayoutChoice.Trunk, inputShape: [Int], outputChannels: Int, kernelSize: Int,
        inputLayout: MapLayout?, computesInputGradient: Bool = true, batchNorm: Bool, thenKernelSize: Int? = nil
    ) -> MapLayout {
        let geometry = geometry(inputShape: inputShape, kernelSize: kernelSize)
        return MapLayoutChoice.outputLayout(
            of: trunk, convolution: geometry, outputChannels: outputChannels, inputLayout: inputLayout,
            computesInputGradient: computesInputGradient, batchNorm: batchNorm,
            sameLayoutConvolution: thenKernelSize.map {
                Self.geometry(
                    inputShape: [outputChannels, geometry.outputHeight, geometry.outputWidth], kernelSize: $0)
            })
    }

    public var inputShape: [Int] { [geometry.channels, geometry.height, geometry.width] }
    public var outputShape: [Int] { [outputChannels, geometry.outputHeight, geometry.outputWidth] }
    public var kernelShape: [Int] { [geometry.kernelHeight, geometry.kernelWidth] }
    /// A multiply-add counts 2; the bias adds 1 per output value.
    public var inferenceFLOPs: Int {
        2 * geometry.patchSize * outputChannels * geometry.outputPositions + outputChannels * geometry.outputPositions
    }

    public func declare(into layout: inout ParameterLayoutBuilder, prefix: String) {
        parameters.declare(
            into: &layout, prefix: prefix,
            weightShape: [outputChannels, geometry.channels, geometry.kernelHeight, geometry.kernelWidth])
    }

    public func bind(to store: ParameterStore) { parameters.bind(to: store) }

    /// PyTorch's default: weight and bias uniform in +-1/sqrt(in * kh * kw).
    public func initialize(using generator: inout SeededGenerator) {
        parameters.initialize(fanIn: geometry.patchSize, using: &generator)
    }

    /// Makes the primitives of the training batch before the first step.
    public func reserve(maxBatch: Int) { _ = primitives(batch: maxBatch) }

    /// oneDNN's implementation of each pass at `batch`, for benchmarks ("jit:avx512_core").
    public func implementations(batch: Int) -> (forward: String, backwardWeights: String, backwardData: String?) {
        primitives(batch: batch).implementations
    }

    public func implementation(batch: Int) -> String {
        let passes = implementations(batch: batch)
        return "oneDNN \(passes.forward)" + (passes.backwardData == nil ? ", no backward data" : "")
    }

    public func primitiveImplementations(batch: Int) -> [PrimitiveImplementation] {
        primitives(batch: batch).primitiveImplementations
    }

    /// The batch sizes primitives were made for.
    var preparedBatchSizes: [Int] { primitives.keys.sorted() }

    private func primitives(batch: Int) -> ConvolutionPrimitives {
        if let made = primitives[batch] { return made }
        do {
            let made = try ConvolutionPrimitives(
                geometry: geometry, outputChannels: outputChannels, batch: batch,
                inputLayout: inputLayout, outputLayout: outputLayout,
                inputGradient: computesInputGradient)
            primitives[batch] = made
            return made
        } catch {
            preconditionFailure("Conv2D \(inputShape)->\(outputShape): \(error)")
        }
    }

    public func forward(
        _ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>, batch: Int,
        context: ForwardContext
    ) {
        precondition(
            input.count >= batch * inputCount && output.count >= batch * outputCount,
            "Conv2D \(inputShape)->\(outputShape): buffers too small for batch \(batch)")
        if let made = primitives[batch] {
            made.forward(
                input: input.baseAddress!, weight: weight.baseAddress!, bias: bias.baseAddress!,
                output: output.baseAddress!)
            return
        }
        // A batch size met for the first time (early-exit inference passes on whatever is left of
        // a batch): in power-of-two pieces, whose primitives then serve every size, rather than
        // oneDNN compiling kernels for each new size. Samples are contiguous in every layout.
        var done = 0
        while done < batch {
            let piece = 1 << (Int.bitWidth - 1 - (batch - done).leadingZeroBitCount)
            primitives(batch: piece).forward(
                input: input.baseAddress! + done * inputCount, weight: weight.baseAddress!,
                bias: bias.baseAddress!, output: output.baseAddress! + done * outputCount)
            done += piece
        }
    }

    public func backward(
        input: UnsafeBufferPointer<Float>, output: UnsafeBufferPointer<Float>,
        outputGradient: UnsafeBufferPointer<Float>, inputGradient: UnsafeMutableBufferPointer<Float>?, batch: Int
    ) {
        precondition(
            input.count >= batch * inputCount && outputGradient.count >= batch * outputCount
                && (inputGradient?.count ?? .max) >= batch * inputCount,
            "Conv2D \(inputShape)->\(outputShape): buffers too small for batch \(batch)")
        precondition(
            inputGradient == nil || computesInputGradient,
            "Conv2D \(inputShape)->\(outputShape) was made without the input gradient")
        primitives(batch: batch).backward(
            input: input.baseAddress!, outputGradient: outputGradient.baseAddress!, weight: weight.baseAddress!,
            weightGradient: weightGradient.baseAddress!, biasGradient: biasGradient.baseAddress!,
            inputGradient: inputGradient?.baseAddress)
    }
}
