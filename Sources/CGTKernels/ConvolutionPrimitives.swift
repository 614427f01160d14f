import CDNNL
import CGTDNNL

/// oneDNN's stride-1 convolution of one geometry and batch size, forward and both backward
/// passes, over cgt's `[out, in, kh, kw]` weights and maps in any `MapLayout`.
///
/// The kernels run on oneDNN's blocked maps (`nChw16c`) when the output is `blocked16` and on
/// channels-last maps otherwise: on the paper CNN's layers both ran faster than im2col or NCHW,
/// blocked a little ahead of channels-last (RESULTS.md, "Kernel and reducer choices").
/// Maps in another layout than the kernel's are reordered on the way in and out (a one-channel
/// map is nchw and nhwc at once and never is); the weights are reordered into the layout oneDNN
/// chose for each pass. Everything is made once in `init`: a pass only points the views at this
/// call's buffers.
public final class ConvolutionPrimitives {
    public let geometry: ConvolutionKernels.Geometry
    public let outputChannels: Int
    public let batch: Int
    public let inputLayout: MapLayout
    public let outputLayout: MapLayout

    private let forwardPrimitive: DNNLPrimitive
    private let weightsPrimitive: DNNLPrimitive
    private let dataPrimitive: DNNLPrimitive?

    // Views of cgt's buffers, in cgt's layouts.
    private let input, weight, bias, output: DNNLMemory
    private let outputGradient, weightGradient, biasGradient: DNNLMemory
    private let inputGradient: DNNLMemory?

    // oneDNN's copies in the layouts its kernels chose, with the reorders that fill or empty them.
    private let forwardInput, forwardWeight, forwardOutput: Staged
    private let weightsInput, weightsOutputGradient, weightsGradient: Staged
    private let dataWeight, dataOutputGradient, dataInputGradient: Staged?

    /// - Parameters:
    ///   - inputLayout, outputLayout: the layouts of the caller's maps (input and its gradient,
    ///     output and its gradient).
    ///   - inputGradient: whether `backward` computes the input's gradient (the first layer of
    ///     a network needs none, and oneDNN's backward-data pass is then never made).
    public init(
        geometry g: ConvolutionKernels.Geometry, outputChannels: Int, batch: Int,
        inputLayout: MapLayout = .channelsFirst, outputLayout: MapLayout = .channelsFirst,
        inputGradient wantsInputGradient: Bool
    ) throws {
        precondition(
            batch > 0 && outputChannels > 0, "ConvolutionPrimitives needs a positive batch and output channels")
        precondition(
            inputLayout.admits(channels: g.channels) && outputLayout.admits(channels: outputChannels),
            "ConvolutionPrimitives: \(g.channels) -> \(outputChannels) channels do not fit \(inputLayout) -> \(outputLayout)"
        )
        geometry = g
        self.outputChannels = outputChannels
        self.batch = batch
        self.inputLayout = inputLayout
        self.outputLayout = outputLayout
        let request =
            "convolution \(g.channels)x\(g.height)x\(g.width) -> \(outputChannels)x\(g.outputHeight)x\(g.outputWidth), kernel \(g.kernelHeight)x\(g.kernelWidth), batch \(batch)"

        let inputDims = [batch, g.channels, g.height, g.width]
        let weightDims = [outputChannels, g.channels, g.kernelHeight, g.kernelWidth]
        let outputDims = [batch, outputChannels, g.outputHeight, g.outputWidth]
        // Blocked output: oneDNN's blocked kernels of that block width, which read a one-channel
        // input as nchw. Otherwise its channels-last ones. A one-channel map is the same bytes as
        // nchw and nhwc: it is described as the kernel reads it, so no reorder runs.
        let blocked = outputLayout.blockWidth != nil
        let kernelInputTag = blocked ? (g.channels == 1 ? dnnl_nchw : outputLayout.dnnlTag) : dnnl_nhwc
        let kernelOutputTag = blocked ? outputLayout.dnnlTag : dnnl_nhwc
        let userInput = try DNNLTensorDescriptor(
            inputDims, g.channels == 1 && inputLayout.blockWidth == nil ? kernelInputTag : inputLayout.dnnlTag)
        let userWeight = try DNNLTensorDescriptor(weightDims, dnnl_oihw)
        let userBias = try DNNLTensorDescriptor([outputChannels], dnnl_x)
        let userOutput = try DNNLTensorDescriptor(
            outputDims, outputChannels == 1 && outputLayout.blockWidth == nil ? kernelOutputTag : outputLayout.dnnlTag)
        var kernelInput = try DNNLTensorDescriptor(inputDims, kernelInputTag).raw
        var anyWeight = try DNNLTensorDescriptor(weightDims, dnnl_format_tag_any).raw
        var kernelOutput = try DNNLTensorDescriptor(outputDims, kernelOutputTag).raw
        var plainBias = userBias.raw

        var strides = DNNLDims([1, 1])
        var paddingLeft = DNNLDims([g.paddingHeight, g.paddingWidth])
        // Output = H + left + right - kh + 1, so right = Hout - 1 + kh - H - left.
        var paddingRight = DNNLDims([
            g.outputHeight - 1 + g.kernelHeight - g.height - g.paddingHeight,
            g.outputWidth - 1 + g.kernelWidth - g.width - g.paddingWidth,
        ])

        var forwardDesc = dnnl_convolution_desc_t()
        try check(
            dnnl_convolution_forward_desc_init(
                &forwardDesc, dnnl_forward_training, dnnl_convolution_direct,
                &kernelInput, &anyWeight, &plainBias, &kernelOutput, &strides.raw.0, &paddingLeft.raw.0,
                &paddingRight.raw.0),
            "dnnl_convolution_forward_desc_init", request)
        let forward = try DNNLPrimitiveDescriptor(&forwardDesc, request: "\(request), forward")

        var weightsDesc = dnnl_convolution_desc_t()
        try check(
            dnnl_convolution_backward_weights_desc_init(
                &weightsDesc, dnnl_convolution_direct, &kernelInput, &anyWeight, &plainBias,
                &kernelOutput, &strides.raw.0, &paddingLeft.raw.0, &paddingRight.raw.0),
            "dnnl_convolution_backward_weights_desc_init", request)
        let weights = try DNNLPrimitiveDescriptor(&weightsDesc, hint: forward, request: "\(request), backward weights")

        input = try DNNLMemory(over: userInput)
        weight = try DNNLMemory(over: userWeight)
        bias = try DNNLMemory(over: userBias)
        output = try DNNLMemory(over: userOutput)
        outputGradient = try DNNLMemory(over: userOutput)
        weightGradient = try DNNLMemory(over: userWeight)
        biasGradient = try DNNLMemory(over: userBias)

        forwardInput = try Staged(user: input, wanted: forward.descriptor(dnnl_query_src_md), direction: .toOneDNN)
        forwardWeight = try Staged(
            user: weight, wanted: forward.descriptor(dnnl_query_weights_md), direction: .toOneDNN)
        forwardOutput = try Staged(user: output, wanted: forward.descriptor(dnnl_query_dst_md), direction: .toCGT)
        forwardPrimitive = try DNNLPrimitive(
            forward,
            arguments: [
                (DNNL_ARG_SRC, forwardInput.inner), (DNNL_ARG_WEIGHTS, forwardWeight.inner),
                (DNNL_ARG_BIAS, bias), (DNNL_ARG_DST, forwardOutput.inner),
            ])

        weightsInput = try Staged(user: input, wanted: weights.descriptor(dnnl_query_src_md), direction: .toOneDNN)
        weightsOutputGradient = try Staged(
            user: outputGradient, wanted: weights.descriptor(dnnl_query_diff_dst_md), direction: .toOneDNN)
        weightsGradient = try Staged(
            user: weightGradient, wanted: weights.descriptor(dnnl_query_diff_weights_md), direction: .toCGT)
        weightsPrimitive = try DNNLPrimitive(
            weights,
            arguments: [
                (DNNL_ARG_SRC, weightsInput.inner), (DNNL_ARG_DIFF_DST, weightsOutputGradient.inner),
                (DNNL_ARG_DIFF_WEIGHTS, weightsGradient.inner), (DNNL_ARG_DIFF_BIAS, biasGradient),
            ])

        if wantsInputGradient {
            var dataDesc = dnnl_convolution_desc_t()
            try check(
                dnnl_convolution_backward_data_desc_init(
                    &dataDesc, dnnl_convolution_direct, &kernelInput, &anyWeight, &kernelOutput,
                    &strides.raw.0, &paddingLeft.raw.0, &paddingRight.raw.0),
                "dnnl_convolution_backward_data_desc_init", request)
            let data = try DNNLPrimitiveDescriptor(&dataDesc, hint: forward, request: "\(request), backward data")
            let gradient = try DNNLMemory(over: userInput)
            inputGradient = gradient
            dataWeight = try Staged(user: weight, wanted: data.descriptor(dnnl_query_weights_md), direction: .toOneDNN)
            let wantedGradient = data.descriptor(dnnl_query_diff_dst_md)
            // The backward-weights pass usually wants dY in the same layout: then one reorder serves both.
            dataOutputGradient =
                wantedGradient.sameLayout(as: weightsOutputGradient.inner.descriptor)
                ? weightsOutputGradient.sharing()
                : try Staged(user: outputGradient, wanted: wantedGradient, direction: .toOneDNN)
            dataInputGradient = try Staged(
                user: gradient, wanted: data.descriptor(dnnl_query_diff_src_md), direction: .toCGT)
            dataPrimitive = try DNNLPrimitive(
                data,
                arguments: [
                    (DNNL_ARG_DIFF_DST, dataOutputGradient!.inner), (DNNL_ARG_WEIGHTS, dataWeight!.inner),
                    (DNNL_ARG_DIFF_SRC, dataInputGradient!.inner),
                ])
        } else {
            inputGradient = nil
            dataWeight = nil
            dataOutputGradient = nil
            dataInputGradient = nil
            dataPrimitive = nil
        }
    }

    /// oneDNN's implementations of the three passes, e.g. "jit:avx512_core".
    public var implementations: (forward: String, backwardWeights: String, backwardData: String?) {
        (
            forwardPrimitive.descriptor.implementation, weightsPrimitive.descriptor.implementation,
            dataPrimitive?.descriptor.implementation
        )
    }

    /// Every primitive a training step runs here, passes and reorders, with oneDNN's implementation of each.
    public var primitiveImplementations: [PrimitiveImplementation] {
        var list = [
            PrimitiveImplementation(
                pass: "forward", implementation: forwardPrimitive.descriptor.implementation, runsInInference: true),
            PrimitiveImplementation(
                pass: "backward weights", implementation: weightsPrimitive.descriptor.implementation),
        ]
        if let dataPrimitive {
            list.append(
                PrimitiveImplementation(pass: "backward data", implementation: dataPrimitive.descriptor.implementation))
        }
        // The forward pass's reorders run in inference too; the others in training alone.
        let reorders: [(tensor: String, staged: Staged?, inference: Bool)] = [
            ("input (forward)", forwardInput, true), ("weight (forward)", forwardWeight, true),
            ("output (forward)", forwardOutput, true), ("input (backward weights)", weightsInput, false),
            ("output gradient (backward weights)", weightsOutputGradient, false),
            ("weight gradient (backward weights)", weightsGradient, false),
            ("weight (backward data)", dataWeight, false),
            ("output gradient (backward data)", dataOutputGradient, false),
            ("input gradient (backward data)", dataInputGradient, false),
        ]
        for reorder in reorders {
            if let implementation = reorder.staged?.implementation {
                list.append(
                    PrimitiveImplementation(
                        pass: "reorder of the \(reorder.tensor)", implementation: implementation,
                        runsInInference: reorder.inference))
            }
        }
        return list
    }

    /// y = conv(x, W) + b for `batch` samples.
    public func forward(
        input x: UnsafePointer<Float>, weight w: UnsafePointer<Float>, bias b: UnsafePointer<Float>,
        output y: UnsafeMutablePointer<Float>
    ) {
        input.point(at: x)
        weight.point(at: w)
        bias.point(at: b)
        output.point(at: y)
        forwardInput.reorder()
        forwardWeight.reorder()
        forwardPrimitive.run()
        forwardOutput.reorder()
    }

    /// dW and db (overwritten) from x and dY, and dX when the primitives were made for it and
    /// `inputGradient` is given.
    public func backward(
        input x: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>, weight w: UnsafePointer<Float>,
        weightGradient dw: UnsafeMutablePointer<Float>, biasGradient db: UnsafeMutablePointer<Float>,
        inputGradient dx: UnsafeMutablePointer<Float>?
    ) {
        input.point(at: x)
        outputGradient.point(at: dy)
        weight.point(at: w)
        weightGradient.point(at: dw)
        biasGradient.point(at: db)
        weightsInput.reorder()
        weightsOutputGradient.reorder()
        weightsPrimitive.run()
        weightsGradient.reorder()
        guard let dx else { return }
        guard let inputGradient, let dataPrimitive, let dataWeight, let dataOutputGradient, let dataInputGradient else {
            preconditionFailure("ConvolutionPrimitives were made without the input gradient")
        }
        inputGradient.point(at: dx)
        dataWeight.reorder()
        dataOutputGradient.reorder()
        dataPrimitive.run()
        dataInputGradient.reorder()
    }
}

/// A tensor as oneDNN's kernel wants it: cgt's own view where the layouts agree, otherwise a
/// copy that oneDNN owns and the reorder between the two.
private struct Staged {
    enum Direction { case toOneDNN, toCGT }

    let inner: DNNLMemory
    private let reorderPrimitive: DNNLPrimitive?

    init(user: DNNLMemory, wanted: DNNLTensorDescriptor, direction: Direction) throws {
        if wanted.sameLayout(as: user.descriptor) {
            inner = user
            reorderPrimitive = nil
            return
        }
        let copy = try DNNLMemory(allocating: wanted)
        inner = copy
        let (from, to) = direction == .toOneDNN ? (user, copy) : (copy, user)
        let descriptor = try DNNLPrimitiveDescriptor(
            reorderFrom: from.descriptor, to: to.descriptor, request: "a reorder")
        reorderPrimitive = try DNNLPrimitive(descriptor, arguments: [(DNNL_ARG_FROM, from), (DNNL_ARG_TO, to)])
    }

    private init(inner: DNNLMemory) {
        self.inner = inner
        reorderPrimitive = nil
    }

    /// The same copy without a reorder of its own: for a second kernel reading a tensor that
    /// an earlier `reorder()` of this step already filled.
    func sharing() -> Staged { Staged(inner: inner) }

    @inline(__always)
    func reorder() { reorderPrimitive?.run() }

    /// oneDNN's implementation of the reorder, or nil where none runs.
    var implementation: String? { reorderPrimitive?.descriptor.implementation }
}

extension MapLayout {
    /// oneDNN's name of the layout for a batch of maps.
    var dnnlTag: dnnl_format_tag_t {
        switch self {
        case .channelsFirst: dnnl_nchw
        case .channelsLast: dnnl_nhwc
        case .blocked8: dnnl_nChw8c
        case .blocked16: dnnl_nChw16c
        }
    }
}
