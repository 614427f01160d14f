/// The fully connected early-exit network of the paper's Indian Pines experiment.
public struct MLPArchitecture: Equatable, Sendable {
    public var inputFeatures: Int
    public var hiddenWidths: [Int]
    /// 1-based hidden layers followed by an exit, as in the paper ({1, 3, 5}).
    public var exitsAfter: [Int]
    public var classes: Int
    public var batchNorm: Bool
    /// Shallow exits get an extra "other" output (ClassyNet, see `ClassGroups`).
    public var otherOutput = false
    public var dropout: Float

    public init(
        inputFeatures: Int, hiddenWidths: [Int], exitsAfter: [Int], classes: Int, batchNorm: Bool = true,
        dropout: Float = 0.2
    ) {
        self.inputFeatures = inputFeatures
        self.hiddenWidths = hiddenWidths
        self.exitsAfter = exitsAfter
        self.classes = classes
        self.batchNorm = batchNorm
        self.dropout = dropout
    }

    /// Each hidden layer is a block Linear -> BatchNorm -> ReLU -> Dropout (BatchNorm and ReLU
    /// one layer, `BatchNorm.appliesReLU`); each exit a Linear head.
    public func build() -> EarlyExitNetwork {
        var blocks: [Sequential] = []
        var width = inputFeatures
        for (i, hidden) in hiddenWidths.enumerated() {
            var layers: [Layer] = [Linear(inputFeatures: width, outputFeatures: hidden)]
            // BatchNorm computes the ReLU after it in the same pass.
            layers.append(batchNorm ? BatchNorm(shape: [hidden], appliesReLU: true) : ReLU(shape: [hidden]))
            if dropout > 0 { layers.append(Dropout(shape: [hidden], probability: dropout, streamIndex: UInt64(i))) }
            blocks.append(Sequential(prefix: "blocks.\(i)", layers: layers))
            width = hidden
        }
        let heads = exitsAfter.enumerated().map { e, layer in
            Sequential(
                prefix: "exits.\(e)",
                layers: [Linear(inputFeatures: hiddenWidths[layer - 1], outputFeatures: outputs(exit: e))])
        }
        return EarlyExitNetwork(
            inputShape: [inputFeatures], classes: classes, blocks: blocks, exits: heads,
            exitBlocks: exitsAfter.map { $0 - 1 })
    }

    /// Outputs of exit e's head: the classes, and "other" at shallow exits if asked.
    func outputs(exit e: Int) -> Int { otherOutput && e < exitsAfter.count - 1 ? classes + 1 : classes }
}
