import CDNNL
import CGTDNNL

/// oneDNN's batch normalisation in training, forward and backward, of one shape and batch size,
/// optionally with the ReLU after it in the same pass: what `BatchNorm` runs on feature maps
/// when their statistics are this rank's own.
///
/// On the paper CNN's maps oneDNN's passes are faster than cgt's kernels (`BatchNormKernels`),
/// which also write the normalised values for the backward pass; oneDNN recomputes them from
/// the input and keeps the ReLU's mask as bits. On the paper MLP's features cgt's kernels are
/// faster, so dense layers keep them (RESULTS.md, "Kernel and reducer choices"). Synchronised
/// statistics (`BatchNormKernels.StatisticsReducer`) need an all-reduce in the middle of both
/// passes, which oneDNN's primitives cannot make room for, so they stay on cgt's kernels.
///
/// The variance oneDNN returns is the biased one (divided by the count), the mean and variance
/// of the batch land in the caller's buffers, and the caller updates the running statistics.
public final class BatchNormPrimitives {
    public let batch: Int
    public let channels: Int
    public let appliesReLU: Bool

    private let forwardPrimitive: DNNLPrimitive
    private let backwardPrimitive: DNNLPrimitive
    private let input, output, inputGradient, outputGradient: DNNLMemory
    private let gamma, beta, gammaGradient, betaGradient, mean, variance: DNNLMemory

    /// - Parameters:
    ///   - spatial: `(height, width)` of `[C, H, W]` maps in `layout`, or nil for `[N, C]` features.
    public init(
        batch: Int, channels: Int, spatial: (height: Int, width: Int)?, layout: MapLayout,
        appliesReLU: Bool, epsilon: Float
    ) throws {
        precondition(batch > 0 && channels > 0, "BatchNormPrimitives needs a positive batch and channel count")
        self.batch = batch
        self.channels = channels
        self.appliesReLU = appliesReLU
        let request =
            "batch normalisation of \(batch) x \(channels)\(spatial.map { " x \($0.height) x \($0.width)" } ?? "")"
        // Features as 1 x 1 channels-last maps: oneDNN's `nc` batch normalisation is its generic
        // reference code, an order of magnitude slower (RESULTS.md, "Kernel and reducer choices").
        let data =
            try spatial.map { try DNNLTensorDescriptor([batch, channels, $0.height, $0.width], layout.dnnlTag) }
            ?? DNNLTensorDescriptor([batch, channels, 1, 1], dnnl_nhwc)
        let perChannel = try DNNLTensorDescriptor([channels], dnnl_x)
        var raw = data.raw
        let flags = dnnl_use_scale.rawValue | dnnl_use_shift.rawValue | (appliesReLU ? dnnl_fuse_norm_relu.rawValue : 0)

        var forwardDesc = dnnl_batch_normalization_desc_t()
        try check(
            dnnl_batch_normalization_forward_desc_init(&forwardDesc, dnnl_forward_training, &raw, epsilon, flags),
            "dnnl_batch_normalization_forward_desc_init", request)
        let forward = try DNNLPrimitiveDescriptor(&forwardDesc, request: "\(request), forward")
        var backwardDesc = dnnl_batch_normalization_desc_t()
        try check(
            dnnl_batch_normalization_backward_desc_init(&backwardDesc, dnnl_backward, &raw, &raw, epsilon, flags),
            "dnnl_batch_normalization_backward_desc_init", request)
        let backward = try DNNLPrimitiveDescriptor(&backwardDesc, hint: forward, request: "\(request), backward")

        input = try DNNLMemory(over: data)
        output = try DNNLMemory(over: data)
        inputGradient = try DNNLMemory(over: data)
        outputGradient = try DNNLMemory(over: data)
        gamma = try DNNLMemory(over: perChannel)
        beta = try DNNLMemory(over: perChannel)
        gammaGradient = try DNNLMemory(over: perChannel)
        betaGradient = try DNNLMemory(over: perChannel)
        mean = try DNNLMemory(over: perChannel)
        variance = try DNNLMemory(over: perChannel)
        var forwardArguments: [(Int32, DNNLMemory)] = [
            (DNNL_ARG_SRC, input), (DNNL_ARG_DST, output), (DNNL_ARG_SCALE, gamma), (DNNL_ARG_SHIFT, beta),
            (DNNL_ARG_MEAN, mean), (DNNL_ARG_VARIANCE, variance),
        ]
        var backwardArguments: [(Int32, DNNLMemory)] = [
            (DNNL_ARG_SRC, input), (DNNL_ARG_DIFF_DST, outputGradient), (DNNL_ARG_SCALE, gamma), (DNNL_ARG_SHIFT, beta),
            (DNNL_ARG_MEAN, mean), (DNNL_ARG_VARIANCE, variance), (DNNL_ARG_DIFF_SRC, inputGradient),
            (DNNL_ARG_DIFF_SCALE, gammaGradient), (DNNL_ARG_DIFF_SHIFT, betaGradient),
        ]
        // The ReLU's mask, written by the forward pass for the backward pass.
        let workspaceLayout = forward.descriptor(dnnl_query_workspace_md)
        if workspaceLayout.byteCount > 0 {
            let workspace = try DNNLMemory(allocating: workspaceLayout)
            forwardArguments.append((DNNL_ARG_WORKSPACE, workspace))
            backwardArguments.append((DNNL_ARG_WORKSPACE, workspace))
        }
        forwardPrimitive = try DNNLPrimitive(forward, arguments: forwardArguments)
        backwardPrimitive = try DNNLPrimitive(backward, arguments: backwardArguments)
    }

    /// oneDNN's implementation, e.g. "bnorm_jit:avx512_core".
    public var implementation: String { forwardPrimitive.descriptor.implementation }

    /// Both passes with oneDNN's implementation of each.
    public var primitiveImplementations: [PrimitiveImplementation] {
        [
            PrimitiveImplementation(pass: "forward", implementation: forwardPrimitive.descriptor.implementation),
            PrimitiveImplementation(pass: "backward", implementation: backwardPrimitive.descriptor.implementation),
        ]
    }

    /// y = gamma * (x - mean) / sqrt(var + eps) + beta (max(y, 0) with the ReLU) with the batch's
    /// statistics, which land in `batchMean` and `batchVariance` (biased).
    public func forward(
        input x: UnsafePointer<Float>, gamma g: UnsafePointer<Float>, beta b: UnsafePointer<Float>,
        output y: UnsafeMutablePointer<Float>,
        batchMean: UnsafeMutablePointer<Float>, batchVariance: UnsafeMutablePointer<Float>
    ) {
        input.point(at: x)
        gamma.point(at: g)
        beta.point(at: b)
        output.point(at: y)
        mean.point(at: batchMean)
        variance.point(at: batchVariance)
        forwardPrimitive.run()
    }

    /// dx, dgamma and dbeta (overwritten) of the last `forward`, whose input, statistics and
    /// parameters these must be.
    public func backward(
        input x: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>,
        gamma g: UnsafePointer<Float>, beta b: UnsafePointer<Float>,
        batchMean: UnsafePointer<Float>, batchVariance: UnsafePointer<Float>,
        gammaGradient dg: UnsafeMutablePointer<Float>, betaGradient db: UnsafeMutablePointer<Float>,
        inputGradient dx: UnsafeMutablePointer<Float>
    ) {
        input.point(at: x)
        outputGradient.point(at: dy)
        gamma.point(at: g)
        beta.point(at: b)
        mean.point(at: batchMean)
        variance.point(at: batchVariance)
        gammaGradient.point(at: dg)
        betaGradient.point(at: db)
        inputGradient.point(at: dx)
        backwardPrimitive.run()
    }
}
