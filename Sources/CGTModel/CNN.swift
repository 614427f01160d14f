import CGTKernels

/// The convolutional early-exit network of the paper's Fashion-MNIST experiment.
///
/// Each block is Conv 3x3 -> BatchNorm2d -> ReLU -> MaxPool 2x2 ("conv", "bn", "relu", "pool"),
/// halving H and W; each exit is GlobalAveragePool -> Linear ("gap", "linear"), so a head costs
/// little whatever the size of the map it reads. The input is channels-first, as datasets store
/// it; every map after the first convolution has the layout `MapLayoutChoice` picks for this
/// CPU (16-channel blocks on AVX-512, 8-channel ones on AVX2, channels-last where the count fills
/// no block), so the trunk runs on oneDNN's JIT kernels without a reorder between layers. BatchNorm computes the ReLU after it in the same pass. Key paths match a PyTorch model with
/// `blocks = ModuleList(Sequential(conv=..., bn=..., relu=..., pool=...))` and
/// `exits = ModuleList(Sequential(gap=..., linear=...))`.
public struct CNNArchitecture: Equatable, Sendable {
    /// `[channels, height, width]` of one input image.
    public var inputShape: [Int]
    /// Output channels of each block's convolution.
    public var channels: [Int]
    /// 1-based blocks followed by an exit; the last must be the last block.
    public var exitsAfter: [Int]
    public var classes: Int
    public var kernelSize: Int
    public var batchNorm: Bool
    /// Shallow exits get an extra "other" output (ClassyNet, see `ClassGroups`).
    public var otherOutput = false

    /// The defaults are the paper's: 28x28 grey images, blocks of 32, 64 and 128 channels, an
    /// exit after each, 10 classes.
    public init(
        inputShape: [Int] = [1, 28, 28], channels: [Int] = [32, 64, 128], exitsAfter: [Int] = [1, 2, 3],
        classes: Int = 10, kernelSize: Int = 3, batchNorm: Bool = true
    ) {
        self.inputShape = inputShape
        self.channels = channels
        self.exitsAfter = exitsAfter
        self.classes = classes
        self.kernelSize = kernelSize
        self.batchNorm = batchNorm
    }

    public func build() -> EarlyExitNetwork {
        precondition(inputShape.count == 3, "the CNN takes [channels, height, width] images, got \(inputShape)")
        precondition(!channels.isEmpty, "the CNN needs at least one block")
        precondition(
            exitsAfter.allSatisfy { (1...channels.count).contains($0) },
            "exits must follow blocks 1...\(channels.count), got \(exitsAfter)")
        var blocks: [Sequential] = []
        var blockOutputs: [(shape: [Int], layout: MapLayout)] = []
        var shape = inputShape
        var inputLayout = MapLayout.channelsFirst
        for (i, width) in channels.enumerated() {
            let layout = Conv2D.outputLayout(
                of: .plain, inputShape: shape, outputChannels: width, kernelSize: kernelSize, inputLayout: inputLayout,
                computesInputGradient: i > 0, batchNorm: batchNorm)
            let conv = Conv2D(
                inputShape: shape, outputChannels: width, kernelSize: kernelSize,
                inputLayout: inputLayout, outputLayout: layout, computesInputGradient: i > 0)
            let mapShape = conv.outputShape
            var layers: [Layer] = [conv]
            layers.append(
                batchNorm ? BatchNorm(shape: mapShape, layout: layout, appliesReLU: true) : ReLU(shape: mapShape))
            let pool = MaxPool2D(shape: mapShape, layout: layout)
            layers.append(pool)
            blocks.append(Sequential(prefix: "blocks.\(i)", layers: layers))
            shape = pool.outputShape
            inputLayout = layout
            blockOutputs.append((shape, layout))
        }
        return EarlyExitNetwork(
            inputShape: inputShape, classes: classes, blocks: blocks,
            exits: Self.poolingHeads(after: exitsAfter, of: blockOutputs, outputs: outputs(exit:)),
            exitBlocks: exitsAfter.map { $0 - 1 })
    }

    /// Exit heads GlobalAveragePool -> Linear ("gap", "linear") on the maps of the 1-based
    /// blocks `exitsAfter`, as the CNN and the ResNet have them.
    static func poolingHeads(
        after exitsAfter: [Int], of blockOutputs: [(shape: [Int], layout: MapLayout)], outputs: (Int) -> Int
    ) -> [Sequential] {
        exitsAfter.enumerated().map { e, block in
            let map = blockOutputs[block - 1]
            return Sequential(
                prefix: "exits.\(e)",
                layers: [
                    GlobalAveragePool(shape: map.shape, layout: map.layout),
                    Linear(inputFeatures: map.shape[0], outputFeatures: outputs(e)),
                ])
        }
    }

    /// Outputs of exit e's head: the classes, and "other" at shallow exits if asked.
    func outputs(exit e: Int) -> Int { otherOutput && e < exitsAfter.count - 1 ? classes + 1 : classes }
}
