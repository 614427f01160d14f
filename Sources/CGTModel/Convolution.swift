import CGTKernels

/// A stride-1 2-D convolution with zero padding `k / 2`, as PyTorch's `nn.Conv2d(in, out, k, padding=k // 2)`.
///
/// Tensors are `[N, C, H, W]`; the weight is stored `[out, in, kh, kw]` and the bias `[out]`,
/// so checkpoints load into PyTorch unchanged. Each group of `samplesPerProduct` samples is
/// unfolded by im2col into a `[in * kh * kw, samples * H * W]` matrix and multiplied by the
/// weight in one `cblas_sgemm`; the backward pass unfolds the input again rather than keeping
/// the columns, so a layer holds one group's columns whatever the batch.
///
/// Inference FLOPs per sample: `2 * in * kh * kw * out * Hout * Wout` (a multiply-add counts 2)
/// plus `out * Hout * Wout` for the bias.
public final class Conv2D: Layer {
    public let name = "conv"
    public let geometry: ConvolutionKernels.Geometry
    public let outputChannels: Int
    /// How many samples share one matrix product: more makes the product wider (faster in
    /// BLAS) at the cost of reshuffling the output between channel-major and sample-major order.
    public let samplesPerProduct: Int
    private var parameters = WeightAndBias()
    private var weight: UnsafeMutableBufferPointer<Float> { parameters.weight }
    private var bias: UnsafeMutableBufferPointer<Float> { parameters.bias }
    private var weightGradient: UnsafeMutableBufferPointer<Float> { parameters.weightGradient }
    private var biasGradient: UnsafeMutableBufferPointer<Float> { parameters.biasGradient }
    private let columns = LayerCache()
    private let channelMajor = LayerCache()

    /// - Parameters:
    ///   - inputShape: `[channels, height, width]`.
    ///   - kernelSize: an odd k, so that the padding k / 2 keeps H and W.
    ///   - samplesPerProduct: nil chooses `defaultSamplesPerProduct(positions:)`.
    public init(inputShape: [Int], outputChannels: Int, kernelSize: Int = 3, samplesPerProduct: Int? = nil) {
        precondition(inputShape.count == 3 && inputShape.allSatisfy { $0 > 0 }, "Conv2D takes [channels, height, width], got \(inputShape)")
        precondition(outputChannels > 0, "Conv2D needs a positive number of output channels, got \(outputChannels)")
        precondition(kernelSize > 0 && kernelSize % 2 == 1, "Conv2D needs an odd kernel size, got \(kernelSize)")
        precondition(samplesPerProduct.map { $0 > 0 } ?? true, "samplesPerProduct must be positive")
        geometry = ConvolutionKernels.Geometry(
            channels: inputShape[0], height: inputShape[1], width: inputShape[2], kernelHeight: kernelSize, kernelWidth: kernelSize)
        self.outputChannels = outputChannels
        self.samplesPerProduct = samplesPerProduct ?? Conv2D.defaultSamplesPerProduct(positions: geometry.outputPositions)
    }

    /// Enough samples per product for about 256 columns (output positions times samples).
    ///
    /// Measured on the paper's CNN at batch 64 (one OpenBLAS thread): a 7x7 map alone gives
    /// BLAS thin 49-column products, and 4 to 8 samples per product run that layer about 7%
    /// faster; whole-batch products run each layer 10-30% slower (a batch's columns, 14 MB for
    /// the second block, no longer fit in cache).
    public static func defaultSamplesPerProduct(positions: Int) -> Int {
        max(1, (256 + positions - 1) / positions)
    }

    public var inputShape: [Int] { [geometry.channels, geometry.height, geometry.width] }
    public var outputShape: [Int] { [outputChannels, geometry.outputHeight, geometry.outputWidth] }
    public var kernelShape: [Int] { [geometry.kernelHeight, geometry.kernelWidth] }
    /// A multiply-add counts 2; the bias adds 1 per output value.
    public var inferenceFLOPs: Int {
        2 * geometry.patchSize * outputChannels * geometry.outputPositions + outputChannels * geometry.outputPositions
    }

    public func declare(into layout: inout ParameterLayoutBuilder, prefix: String) {
        parameters.declare(into: &layout, prefix: prefix,
                           weightShape: [outputChannels, geometry.channels, geometry.kernelHeight, geometry.kernelWidth])
    }

    public func bind(to store: ParameterStore) { parameters.bind(to: store) }

    /// PyTorch's default: weight and bias uniform in +-1/sqrt(in * kh * kw).
    public func initialize(using generator: inout SeededGenerator) {
        parameters.initialize(fanIn: geometry.patchSize, using: &generator)
    }

    public func reserve(maxBatch: Int) {
        let group = min(maxBatch, samplesPerProduct)
        columns.reserve(geometry.patchSize * group * geometry.outputPositions)
        if group > 1 { channelMajor.reserve(outputChannels * group * geometry.outputPositions) }
    }

    public func forward(_ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>, batch: Int, context: ForwardContext) {
        precondition(input.count >= batch * inputCount && output.count >= batch * outputCount,
                     "Conv2D \(inputShape)->\(outputShape): buffers too small for batch \(batch)")
        let positions = geometry.outputPositions, k = geometry.patchSize
        var start = 0
        while start < batch {
            let group = min(samplesPerProduct, batch - start)
            let x = UnsafeBufferPointer(rebasing: input[(start * inputCount)..<((start + group) * inputCount)])
            let y = UnsafeMutableBufferPointer(rebasing: output[(start * outputCount)..<((start + group) * outputCount)])
            let col = columns.storage.mutablePrefix(count: k * group * positions)
            ConvolutionKernels.im2col(x, geometry: geometry, samples: group, into: col)
            if group == 1 {
                MatrixMultiply.gemm(.plain, .plain, m: outputChannels, n: positions, k: k,
                                    a: weight.baseAddress!, b: col.baseAddress!, c: y.baseAddress!)
                ConvolutionKernels.addChannelBias(UnsafeBufferPointer(bias), to: y, samples: 1, positions: positions)
            } else {
                let product = channelMajor.storage.mutablePrefix(count: outputChannels * group * positions)
                MatrixMultiply.gemm(.plain, .plain, m: outputChannels, n: group * positions, k: k,
                                    a: weight.baseAddress!, b: col.baseAddress!, c: product.baseAddress!)
                ConvolutionKernels.channelMajorToSampleMajor(
                    UnsafeBufferPointer(product), channels: outputChannels, samples: group, positions: positions,
                    bias: UnsafeBufferPointer(bias), into: y)
            }
            start += group
        }
    }

    public func backward(
        input: UnsafeBufferPointer<Float>, output: UnsafeBufferPointer<Float>,
        outputGradient: UnsafeBufferPointer<Float>, inputGradient: UnsafeMutableBufferPointer<Float>?, batch: Int
    ) {
        precondition(input.count >= batch * inputCount && outputGradient.count >= batch * outputCount,
                     "Conv2D \(inputShape)->\(outputShape): buffers too small for batch \(batch)")
        let positions = geometry.outputPositions, k = geometry.patchSize
        ConvolutionKernels.channelSums(outputGradient, samples: batch, positions: positions, into: biasGradient)
        var start = 0
        while start < batch {
            let group = min(samplesPerProduct, batch - start)
            let x = UnsafeBufferPointer(rebasing: input[(start * inputCount)..<((start + group) * inputCount)])
            let dy = UnsafeBufferPointer(rebasing: outputGradient[(start * outputCount)..<((start + group) * outputCount)])
            let col = columns.storage.mutablePrefix(count: k * group * positions)
            ConvolutionKernels.im2col(x, geometry: geometry, samples: group, into: col)
            // dY of the group as [out, group * positions]: the sample's own slice when alone.
            let dyColumns: UnsafePointer<Float>
            if group == 1 {
                dyColumns = dy.baseAddress!
            } else {
                let product = channelMajor.storage.mutablePrefix(count: outputChannels * group * positions)
                ConvolutionKernels.sampleMajorToChannelMajor(dy, channels: outputChannels, samples: group, positions: positions, into: product)
                dyColumns = UnsafePointer(product.baseAddress!)
            }
            // dW (+)= dY columns^T; the first group overwrites, the others accumulate.
            MatrixMultiply.gemm(.plain, .transposed, m: outputChannels, n: k, k: group * positions,
                                a: dyColumns, b: col.baseAddress!, beta: start == 0 ? 0 : 1, c: weightGradient.baseAddress!)
            if let inputGradient {
                // d columns = W^T dY, written over the columns (no longer needed), then folded back.
                MatrixMultiply.gemm(.transposed, .plain, m: k, n: group * positions, k: outputChannels,
                                    a: weight.baseAddress!, b: dyColumns, c: col.baseAddress!)
                let dx = UnsafeMutableBufferPointer(rebasing: inputGradient[(start * inputCount)..<((start + group) * inputCount)])
                ConvolutionKernels.col2im(UnsafeBufferPointer(col), geometry: geometry, samples: group, into: dx)
            }
            start += group
        }
    }
}
