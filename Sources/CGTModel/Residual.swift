import CGTKernels
import CGTRandom

/// A basic residual block (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016,
/// Fig. 2 left): y = ReLU(BN2(conv2(ReLU(BN1(conv1(x))))) + shortcut(x)).
///
/// The shortcut is the identity when the block keeps the channel count, else a 1x1 convolution
/// and BatchNorm ("option B" of the paper), so that the sum is taken over like maps. The
/// convolutions keep H and W (stride 1, padding k / 2): a network that downsamples does so
/// before the block (`ResNetArchitecture` puts a 2x2 max pool there).
///
/// Key paths follow torchvision's `BasicBlock`: "<prefix>.conv1", "bn1", "conv2", "bn2",
/// "downsample.0" (the 1x1 convolution) and "downsample.1" (its BatchNorm). Unlike torchvision's,
/// every convolution here has a bias (`Conv2D` always has one), so the PyTorch twin builds its
/// `nn.Conv2d`s with `bias=True`; BatchNorm cancels those biases, so the function is the same.
///
/// Maps keep one layout throughout (`layout`, the output's; the input's is `inputLayout`), so
/// the sum needs no reorder. BN1 computes the ReLU after it in the same pass; the ReLU after the
/// sum runs in place on the output, whose sign pattern the backward pass reads as its mask.
///
/// Inference FLOPs per sample: the convolutions' and BatchNorms' (their own rules), plus 1 per
/// output value for the addition and 1 for the ReLU after it.
public final class ResidualBlock: Layer {
    /// The block's index in its stage ("0", "1"), as in torchvision's `layer2.0`.
    public let name: String
    public let inputLayout: MapLayout
    public let layout: MapLayout
    let conv1: Conv2D
    let bn1: BatchNorm
    let conv2: Conv2D
    let bn2: BatchNorm
    /// The 1x1 convolution and BatchNorm of a projection shortcut; nil for the identity.
    let projection: (conv: Conv2D, bn: BatchNorm)?
    /// conv1's output, BN1's (after its ReLU), conv2's, and the projection's two.
    let conv1Output = LayerCache()
    let hidden = LayerCache()
    let conv2Output = LayerCache()
    let projectionConvOutput = LayerCache()
    let projectionOutput = LayerCache()
    /// Gradients: of the sum (before the last ReLU), and two map-sized scratch buffers the
    /// main path alternates between; `inputScratch` takes the projection's input gradient.
    let sumGradient = LayerCache()
    let scratchA = LayerCache()
    let scratchB = LayerCache()
    let inputScratch = LayerCache()

    /// - Parameters:
    ///   - name: the block's attribute name in its stage ("0").
    ///   - inputShape: `[channels, height, width]`.
    ///   - outputChannels: the channels of both convolutions; a count other than the input's
    ///     makes the shortcut a projection.
    ///   - kernelSize: the (odd) size of both main-path convolutions.
    ///   - inputLayout, layout: the memory order of the input and of every map of the block.
    public init(
        name: String, inputShape: [Int], outputChannels: Int, kernelSize: Int = 3,
        inputLayout: MapLayout = .channelsFirst, layout: MapLayout = .channelsFirst
    ) {
        precondition(
            inputShape.count == 3 && inputShape.allSatisfy { $0 > 0 },
            "ResidualBlock takes [channels, height, width], got \(inputShape)")
        let projects = inputShape[0] != outputChannels
        precondition(
            projects || inputLayout == layout,
            "ResidualBlock \(name): an identity shortcut needs the input in the block's layout \(layout)")
        self.name = name
        self.inputLayout = inputLayout
        self.layout = layout
        conv1 = Conv2D(
            inputShape: inputShape, outputChannels: outputChannels, kernelSize: kernelSize,
            inputLayout: inputLayout, outputLayout: layout)
        let mapShape = conv1.outputShape
        bn1 = BatchNorm(shape: mapShape, layout: layout, appliesReLU: true)
        conv2 = Conv2D(
            inputShape: mapShape, outputChannels: outputChannels, kernelSize: kernelSize,
            inputLayout: layout, outputLayout: layout)
        bn2 = BatchNorm(shape: mapShape, layout: layout)
        projection =
            projects
            ? (
                Conv2D(
                    inputShape: inputShape, outputChannels: outputChannels, kernelSize: 1,
                    inputLayout: inputLayout, outputLayout: layout),
                BatchNorm(shape: mapShape, layout: layout)
            ) : nil
    }

    public var inputShape: [Int] { conv1.inputShape }
    public var outputShape: [Int] { conv1.outputShape }
    public var hasProjection: Bool { projection != nil }

    /// In the order of torchvision's `BasicBlock.state_dict()`.
    public var sublayers: [(name: String, layer: Layer)] {
        var parts: [(name: String, layer: Layer)] = [("conv1", conv1), ("bn1", bn1), ("conv2", conv2), ("bn2", bn2)]
        if let projection { parts += [("downsample.0", projection.conv), ("downsample.1", projection.bn)] }
        return parts
    }

    public var inferenceFLOPs: Int { sublayers.reduce(2 * outputCount) { $0 + $1.layer.inferenceFLOPs } }

    public func declare(into layout: inout ParameterLayoutBuilder, prefix: String) {
        for (name, layer) in sublayers { layer.declare(into: &layout, prefix: "\(prefix).\(name)") }
    }

    public func bind(to store: ParameterStore) { sublayers.forEach { $0.layer.bind(to: store) } }

    /// PyTorch's defaults, as every cgt layer: the convolutions uniform in +-1/sqrt(fan in),
    /// BatchNorm gamma 1 and beta 0 (torchvision's `ResNet` re-initialises with Kaiming normal).
    public func initialize(using generator: inout SeededGenerator) {
        for (_, layer) in sublayers { layer.initialize(using: &generator) }
    }

    public func reserve(maxBatch: Int) {
        for (_, layer) in sublayers { layer.reserve(maxBatch: maxBatch) }
        let map = maxBatch * outputCount
        for cache in [conv1Output, hidden, conv2Output, sumGradient, scratchA, scratchB] { cache.reserve(map) }
        if projection != nil {
            projectionConvOutput.reserve(map)
            projectionOutput.reserve(map)
            inputScratch.reserve(maxBatch * inputCount)
        }
    }

    public func implementation(batch: Int) -> String { "residual block: conv1 \(conv1.implementation(batch: batch))" }

    public func forward(
        _ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>, batch: Int,
        context: ForwardContext
    ) {
        let n = batch * outputCount
        precondition(
            input.count >= batch * inputCount && output.count >= n,
            "ResidualBlock \(inputShape)->\(outputShape): buffers too small for batch \(batch)")
        let x = input.prefix(count: batch * inputCount)
        let c1 = conv1Output.storage.mutablePrefix(count: n)
        let h = hidden.storage.mutablePrefix(count: n)
        let c2 = conv2Output.storage.mutablePrefix(count: n)
        let y = output.mutablePrefix(count: n)
        conv1.forward(x, into: c1, batch: batch, context: context)
        bn1.forward(UnsafeBufferPointer(c1), into: h, batch: batch, context: context)
        conv2.forward(UnsafeBufferPointer(h), into: c2, batch: batch, context: context)
        bn2.forward(UnsafeBufferPointer(c2), into: y, batch: batch, context: context)
        if let projection {
            let p = projectionConvOutput.storage.mutablePrefix(count: n)
            let s = projectionOutput.storage.mutablePrefix(count: n)
            projection.conv.forward(x, into: p, batch: batch, context: context)
            projection.bn.forward(UnsafeBufferPointer(p), into: s, batch: batch, context: context)
            Elementwise.add(UnsafeBufferPointer(s), to: y)
        } else {
            Elementwise.add(x, to: y)
        }
        Elementwise.reluForward(UnsafeBufferPointer(y), y)
    }

    public func backward(
        input: UnsafeBufferPointer<Float>, output: UnsafeBufferPointer<Float>,
        outputGradient: UnsafeBufferPointer<Float>, inputGradient: UnsafeMutableBufferPointer<Float>?, batch: Int
    ) {
        let n = batch * outputCount
        let m = batch * inputCount
        precondition(
            input.count >= m && output.count >= n && outputGradient.count >= n
                && (inputGradient?.count ?? .max) >= m,
            "ResidualBlock \(inputShape)->\(outputShape): buffers too small for batch \(batch)")
        let x = input.prefix(count: m)
        let y = output.prefix(count: n)
        let dx = inputGradient?.mutablePrefix(count: m)
        // Through the ReLU after the sum; the sum passes its gradient to both branches unchanged.
        let ds = sumGradient.storage.mutablePrefix(count: n)
        Elementwise.reluBackward(output: y, outputGradient: outputGradient.prefix(count: n), inputGradient: ds)
        let a = scratchA.storage.mutablePrefix(count: n)
        let b = scratchB.storage.mutablePrefix(count: n)
        // BN2 without a ReLU does not read its output, which the sum has overwritten: y stands in.
        bn2.backward(
            input: UnsafeBufferPointer(conv2Output.storage.mutablePrefix(count: n)), output: y,
            outputGradient: UnsafeBufferPointer(ds), inputGradient: a, batch: batch)
        conv2.backward(
            input: UnsafeBufferPointer(hidden.storage.mutablePrefix(count: n)),
            output: UnsafeBufferPointer(conv2Output.storage.mutablePrefix(count: n)),
            outputGradient: UnsafeBufferPointer(a), inputGradient: b, batch: batch)
        bn1.backward(
            input: UnsafeBufferPointer(conv1Output.storage.mutablePrefix(count: n)),
            output: UnsafeBufferPointer(hidden.storage.mutablePrefix(count: n)),
            outputGradient: UnsafeBufferPointer(b), inputGradient: a, batch: batch)
        conv1.backward(
            input: x, output: UnsafeBufferPointer(conv1Output.storage.mutablePrefix(count: n)),
            outputGradient: UnsafeBufferPointer(a), inputGradient: dx, batch: batch)
        guard let projection else {
            if let dx { Elementwise.add(UnsafeBufferPointer(ds), to: dx) }
            return
        }
        let p = UnsafeBufferPointer(projectionConvOutput.storage.mutablePrefix(count: n))
        projection.bn.backward(
            input: p, output: UnsafeBufferPointer(projectionOutput.storage.mutablePrefix(count: n)),
            outputGradient: UnsafeBufferPointer(ds), inputGradient: a, batch: batch)
        let shortcutInputGradient = dx == nil ? nil : inputScratch.storage.mutablePrefix(count: m)
        projection.conv.backward(
            input: x, output: p, outputGradient: UnsafeBufferPointer(a), inputGradient: shortcutInputGradient,
            batch: batch)
        if let dx, let shortcutInputGradient { Elementwise.add(UnsafeBufferPointer(shortcutInputGradient), to: dx) }
    }
}
