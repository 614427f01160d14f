import CGTKernels

/// 2x2 max pooling with stride 2 over `[C, H, W]`, as PyTorch's `nn.MaxPool2d(2)`: an odd last
/// row or column is dropped, so the output is `[C, floor(H / 2), floor(W / 2)]`.
///
/// Every forward pass records which input each output took, so the backward pass routes each
/// gradient to that one input. Inference FLOPs: 3 comparisons per output (4 inputs).
public final class MaxPool2D: Layer {
    public let name = "pool"
    public let inputShape: [Int]
    /// The memory order of input and output maps.
    public let layout: MapLayout
    /// Channels-first: the chosen input's index in its plane; channels-last: its window slot.
    private let argmax = IndexCache()

    public init(shape: [Int], layout: MapLayout = .channelsFirst) {
        precondition(
            shape.count == 3 && shape[0] > 0 && shape[1] >= 2 && shape[2] >= 2,
            "MaxPool2D takes [channels, height, width] with height and width at least 2, got \(shape)")
        precondition(layout.admits(channels: shape[0]), "\(shape[0]) channels fill no blocks of \(layout.blockWidth ?? 0)")
        inputShape = shape
        self.layout = layout
    }

    public var outputShape: [Int] { [inputShape[0], inputShape[1] / 2, inputShape[2] / 2] }
    public var inferenceFLOPs: Int { 3 * outputCount }
    private func channelsLastMaps(_ batch: Int) -> (maps: Int, channels: Int) {
        layout.channelsLastMaps(batch: batch, channels: inputShape[0])
    }
    public func reserve(maxBatch: Int) { argmax.reserve(maxBatch * outputCount) }

    public func forward(
        _ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>, batch: Int,
        context: ForwardContext
    ) {
        precondition(
            input.count >= batch * inputCount && output.count >= batch * outputCount,
            "MaxPool2D \(inputShape): buffers too small for batch \(batch)")
        let chosen = UnsafeMutableBufferPointer(rebasing: argmax.storage[0..<(batch * outputCount)])
        switch layout {
        case .channelsFirst:
            PoolingKernels.maxPool2x2Forward(
                input, planes: batch * inputShape[0], height: inputShape[1], width: inputShape[2],
                output: output, argmax: chosen)
        case .channelsLast, .blocked8, .blocked16:
            let (maps, channels) = channelsLastMaps(batch)
            PoolingKernels.maxPool2x2ChannelsLastForward(
                input, maps: maps, channels: channels, height: inputShape[1],
                width: inputShape[2], output: output, window: chosen)
        }
    }

    public func backward(
        input: UnsafeBufferPointer<Float>, output: UnsafeBufferPointer<Float>,
        outputGradient: UnsafeBufferPointer<Float>, inputGradient: UnsafeMutableBufferPointer<Float>?, batch: Int
    ) {
        guard let inputGradient else { return }
        let chosen = UnsafeBufferPointer(rebasing: argmax.storage[0..<(batch * outputCount)])
        switch layout {
        case .channelsFirst:
            PoolingKernels.maxPool2x2Backward(
                outputGradient: outputGradient, argmax: chosen, planes: batch * inputShape[0],
                height: inputShape[1], width: inputShape[2], inputGradient: inputGradient)
        case .channelsLast, .blocked8, .blocked16:
            let (maps, channels) = channelsLastMaps(batch)
            PoolingKernels.maxPool2x2ChannelsLastBackward(
                outputGradient: outputGradient, window: chosen, maps: maps,
                channels: channels, height: inputShape[1], width: inputShape[2],
                inputGradient: inputGradient)
        }
    }
}

/// The mean of each channel's plane, `[C, H, W] -> [C]`, as PyTorch's `nn.AdaptiveAvgPool2d(1)`
/// followed by a flatten: the exit heads of the CNN read it, whatever the map size.
///
/// Inference FLOPs: 1 per input value (the additions and the division).
public final class GlobalAveragePool: Layer {
    public let name = "gap"
    public let inputShape: [Int]
    /// The memory order of the input map.
    public let layout: MapLayout

    public init(shape: [Int], layout: MapLayout = .channelsFirst) {
        precondition(
            shape.count == 3 && shape.allSatisfy { $0 > 0 },
            "GlobalAveragePool takes [channels, height, width], got \(shape)")
        precondition(layout.admits(channels: shape[0]), "\(shape[0]) channels fill no blocks of \(layout.blockWidth ?? 0)")
        inputShape = shape
        self.layout = layout
    }

    public var outputShape: [Int] { [inputShape[0]] }
    public var inferenceFLOPs: Int { inputCount }
    private var spatial: Int { inputShape[1] * inputShape[2] }

    public func forward(
        _ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>, batch: Int,
        context: ForwardContext
    ) {
        precondition(
            input.count >= batch * inputCount && output.count >= batch * outputCount,
            "GlobalAveragePool \(inputShape): buffers too small for batch \(batch)")
        switch layout {
        case .channelsFirst:
            PoolingKernels.globalAverageForward(input, planes: batch * inputShape[0], spatial: spatial, output: output)
        case .channelsLast, .blocked8, .blocked16:
            // A blocked map's mean is [C / w, w]: the channels in order.
            let (maps, channels) = layout.channelsLastMaps(batch: batch, channels: inputShape[0])
            PoolingKernels.globalAverageChannelsLastForward(
                input, maps: maps, channels: channels, spatial: spatial, output: output)
        }
    }

    public func backward(
        input: UnsafeBufferPointer<Float>, output: UnsafeBufferPointer<Float>,
        outputGradient: UnsafeBufferPointer<Float>, inputGradient: UnsafeMutableBufferPointer<Float>?, batch: Int
    ) {
        guard let inputGradient else { return }
        switch layout {
        case .channelsFirst:
            PoolingKernels.globalAverageBackward(
                outputGradient: outputGradient, planes: batch * inputShape[0], spatial: spatial,
                inputGradient: inputGradient)
        case .channelsLast, .blocked8, .blocked16:
            let (maps, channels) = layout.channelsLastMaps(batch: batch, channels: inputShape[0])
            PoolingKernels.globalAverageChannelsLastBackward(
                outputGradient: outputGradient, maps: maps, channels: channels,
                spatial: spatial, inputGradient: inputGradient)
        }
    }
}

/// `[C, H, W] -> [C * H * W]`, as PyTorch's `nn.Flatten`: buffers are already flat, so the
/// values are copied unchanged and only the declared shape differs (a dense head after a map).
/// The map must be channels-first, the order PyTorch's flattened features follow.
public final class Flatten: Layer {
    public let name = "flatten"
    public let inputShape: [Int]

    public init(shape: [Int]) {
        precondition(
            !shape.isEmpty && shape.allSatisfy { $0 > 0 }, "Flatten needs a non-empty positive shape, got \(shape)")
        inputShape = shape
    }

    public var outputShape: [Int] { [inputCount] }
    public var inferenceFLOPs: Int { 0 }

    public func forward(
        _ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>, batch: Int,
        context: ForwardContext
    ) {
        _ = output.update(fromContentsOf: input.prefix(count: batch * inputCount))
    }

    public func backward(
        input: UnsafeBufferPointer<Float>, output: UnsafeBufferPointer<Float>,
        outputGradient: UnsafeBufferPointer<Float>, inputGradient: UnsafeMutableBufferPointer<Float>?, batch: Int
    ) {
        guard let inputGradient else { return }
        _ = inputGradient.update(fromContentsOf: outputGradient.prefix(count: batch * inputCount))
    }
}
