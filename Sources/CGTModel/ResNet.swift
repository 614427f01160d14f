import CGTKernels

/// A small residual early-exit network: a stem, then stages of basic residual blocks with an exit
/// after chosen stages.
///
/// Block 0 (the first stage) is the stem, Conv kxk -> BatchNorm -> ReLU ("conv", "bn"), followed
/// by the stage's residual blocks ("0", "1", ...); every later stage halves H and W with a 2x2
/// max pool ("pool") before its blocks, since `Conv2D` has stride 1 only (torchvision's ResNet
/// strides its first 3x3 convolution and the 1x1 projection instead). A stage's first block
/// projects its shortcut when the channel count changes (`ResidualBlock`). Each exit is
/// GlobalAveragePool -> Linear ("gap", "linear"), as in the CNN. After the stem, maps have the
/// layout `MapLayoutChoice` picks for this CPU, as in the CNN.
///
/// Key paths match this PyTorch twin (torchvision's `BasicBlock` with `bias=True` convolutions):
/// `blocks = ModuleList([Sequential(conv=Conv2d(c, s, k, padding=k//2), bn=BatchNorm2d(s),
/// relu=ReLU(), **{"0": BasicBlock(s, w0), ...}), Sequential(pool=MaxPool2d(2), **{"0":
/// BasicBlock(w0, w1), ...}), ...])` and `exits = ModuleList(Sequential(gap=..., linear=...))`,
/// so that `blocks.1.0.conv1.weight` reads as torchvision's `layer2.0.conv1.weight`.
public struct ResNetArchitecture: Equatable, Sendable {
    /// `[channels, height, width]` of one input image.
    public var inputShape: [Int]
    /// Output channels of the stem convolution.
    public var stemChannels: Int
    /// Channels of each stage's residual blocks.
    public var channels: [Int]
    /// Residual blocks in every stage.
    public var blocksPerStage: Int
    /// 1-based stages followed by an exit; the last must be the last stage.
    public var exitsAfter: [Int]
    public var classes: Int
    public var kernelSize: Int
    /// Shallow exits get an extra "other" output (ClassyNet, see `ClassGroups`).
    public var otherOutput = false

    /// The defaults suit 28x28 grey images: a stem of 16 channels, stages of 16, 32 and 64
    /// channels with one block each, an exit after each stage, 10 classes.
    public init(
        inputShape: [Int] = [1, 28, 28], stemChannels: Int = 16, channels: [Int] = [16, 32, 64],
        blocksPerStage: Int = 1, exitsAfter: [Int] = [1, 2, 3], classes: Int = 10, kernelSize: Int = 3
    ) {
        self.inputShape = inputShape
        self.stemChannels = stemChannels
        self.channels = channels
        self.blocksPerStage = blocksPerStage
        self.exitsAfter = exitsAfter
        self.classes = classes
        self.kernelSize = kernelSize
    }

    public func build() -> EarlyExitNetwork {
        precondition(inputShape.count == 3, "the ResNet takes [channels, height, width] images, got \(inputShape)")
        precondition(!channels.isEmpty && blocksPerStage >= 1, "the ResNet needs at least one stage of one block")
        precondition(
            exitsAfter.allSatisfy { (1...channels.count).contains($0) },
            "exits must follow stages 1...\(channels.count), got \(exitsAfter)")
        var stages: [Sequential] = []
        var stageOutputs: [(shape: [Int], layout: MapLayout)] = []
        let stemLayout = Conv2D.outputLayout(
            of: .residual, inputShape: inputShape, outputChannels: stemChannels, kernelSize: kernelSize,
            inputLayout: .channelsFirst,
            computesInputGradient: false, batchNorm: true)
        let stem = Conv2D(
            inputShape: inputShape, outputChannels: stemChannels, kernelSize: kernelSize,
            inputLayout: .channelsFirst, outputLayout: stemLayout, computesInputGradient: false)
        var shape = stem.outputShape
        var layout = stemLayout
        for (s, width) in channels.enumerated() {
            var layers: [Layer] = []
            if s == 0 {
                layers = [stem, BatchNorm(shape: shape, layout: layout, appliesReLU: true)]
            } else {
                let pool = MaxPool2D(shape: shape, layout: layout)
                layers = [pool]
                shape = pool.outputShape
            }
            // An identity shortcut adds the input as it lies, so only a projecting block picks a layout.
            let blockLayout =
                shape[0] == width
                ? layout
                : Conv2D.outputLayout(
                    of: .residual, inputShape: shape, outputChannels: width, kernelSize: kernelSize,
                    inputLayout: layout,
                    batchNorm: true, thenKernelSize: kernelSize)
            for b in 0..<blocksPerStage {
                let block = ResidualBlock(
                    name: "\(b)", inputShape: shape, outputChannels: width, kernelSize: kernelSize,
                    inputLayout: layout, layout: blockLayout)
                layers.append(block)
                shape = block.outputShape
                layout = blockLayout
            }
            stages.append(Sequential(prefix: "blocks.\(s)", layers: layers))
            stageOutputs.append((shape, layout))
        }
        return EarlyExitNetwork(
            inputShape: inputShape, classes: classes, blocks: stages,
            exits: CNNArchitecture.poolingHeads(after: exitsAfter, of: stageOutputs, outputs: outputs(exit:)),
            exitBlocks: exitsAfter.map { $0 - 1 })
    }

    /// Outputs of exit e's head: the classes, and "other" at shallow exits if asked.
    func outputs(exit e: Int) -> Int { otherOutput && e < exitsAfter.count - 1 ? classes + 1 : classes }
}
