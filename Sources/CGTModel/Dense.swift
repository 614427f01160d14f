import CGTKernels
import CGTRandom

/// y = x W^T + b, with W stored `[out, in]` as in PyTorch's `nn.Linear`.
public final class Linear: Layer {
    public let name = "linear"
    public let inputFeatures: Int
    public let outputFeatures: Int
    private var parameters = WeightAndBias()
    private var weight: UnsafeMutableBufferPointer<Float> { parameters.weight }
    private var bias: UnsafeMutableBufferPointer<Float> { parameters.bias }
    private var weightGradient: UnsafeMutableBufferPointer<Float> { parameters.weightGradient }
    private var biasGradient: UnsafeMutableBufferPointer<Float> { parameters.biasGradient }

    public init(inputFeatures: Int, outputFeatures: Int) {
        precondition(
            inputFeatures > 0 && outputFeatures > 0,
            "Linear needs positive sizes, got \(inputFeatures) -> \(outputFeatures)")
        self.inputFeatures = inputFeatures
        self.outputFeatures = outputFeatures
    }

    public var inputShape: [Int] { [inputFeatures] }
    public var outputShape: [Int] { [outputFeatures] }
    /// A multiply-add counts 2; the bias adds 1 per output.
    public var inferenceFLOPs: Int { 2 * inputFeatures * outputFeatures + outputFeatures }

    public func declare(into layout: inout ParameterLayoutBuilder, prefix: String) {
        parameters.declare(into: &layout, prefix: prefix, weightShape: [outputFeatures, inputFeatures])
    }

    public func bind(to store: ParameterStore) { parameters.bind(to: store) }

    public func implementation(batch: Int) -> String { "dnnl_sgemm" }

    /// PyTorch's default: W and b uniform in +-1/sqrt(in).
    public func initialize(using generator: inout SeededGenerator) {
        parameters.initialize(fanIn: inputFeatures, using: &generator)
    }

    public func forward(
        _ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>, batch: Int,
        context: ForwardContext
    ) {
        precondition(
            input.count >= batch * inputFeatures && output.count >= batch * outputFeatures,
            "Linear \(inputFeatures)->\(outputFeatures): buffers too small for batch \(batch)")
        MatrixMultiply.gemm(
            .plain, .transposed, m: batch, n: outputFeatures, k: inputFeatures,
            a: input.baseAddress!, b: weight.baseAddress!, c: output.baseAddress!)
        Elementwise.addBias(UnsafeBufferPointer(bias), to: output, rows: batch)
    }

    public func backward(
        input: UnsafeBufferPointer<Float>, output: UnsafeBufferPointer<Float>,
        outputGradient: UnsafeBufferPointer<Float>, inputGradient: UnsafeMutableBufferPointer<Float>?, batch: Int
    ) {
        // dW = dY^T X, db = column sums of dY, dX = dY W.
        MatrixMultiply.gemm(
            .transposed, .plain, m: outputFeatures, n: inputFeatures, k: batch,
            a: outputGradient.baseAddress!, b: input.baseAddress!, c: weightGradient.baseAddress!)
        Reductions.columnSums(outputGradient, rows: batch, into: biasGradient)
        if let inputGradient {
            MatrixMultiply.gemm(
                .plain, .plain, m: batch, n: inputFeatures, k: outputFeatures,
                a: outputGradient.baseAddress!, b: weight.baseAddress!, c: inputGradient.baseAddress!)
        }
    }
}
