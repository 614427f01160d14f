import CGTKernels

/// A backbone of blocks with an exit head after some of them (Mokssit et al., Fig. 1).
///
/// Exit e reads the output of block `exitBlocks[e]`; the last exit follows the last block.
/// Parameters live in one `ParameterStore` in forward order, each block followed by the heads
/// that read it. The backward pass visits them in exactly the reverse order, so gradients
/// become final from the end of the buffer towards its start, and a bucket at the end can be
/// all-reduced while the backward pass works on the layers before it.
public final class EarlyExitNetwork {
    public let blocks: [Sequential]
    public let exits: [Sequential]
    /// For each exit, the index of the block it follows (0-based, increasing).
    public let exitBlocks: [Int]
    public let inputShape: [Int]
    public let classes: Int
    public let store: ParameterStore
    public private(set) var maxBatch = 0
    private let headGradient = LayerCache()
    /// The lowest parameter offset of each block and each head (the parameter count if it has none).
    private let blockOffsets: [Int]
    private let exitOffsets: [Int]

    public init(inputShape: [Int], classes: Int, blocks: [Sequential], exits: [Sequential], exitBlocks: [Int]) {
        precondition(!blocks.isEmpty && exits.count == exitBlocks.count && !exits.isEmpty, "a network needs blocks and exits")
        precondition(zip(exitBlocks, exitBlocks.dropFirst()).allSatisfy { $0 < $1 }, "exit positions must increase: \(exitBlocks)")
        precondition(exitBlocks.last == blocks.count - 1, "the last exit must follow the last block")
        precondition(blocks[0].inputCount == inputShape.reduce(1, *), "the first block takes \(blocks[0].inputCount) values, input has \(inputShape)")
        for (a, b) in zip(blocks, blocks.dropFirst()) {
            precondition(a.outputCount == b.inputCount, "\(a.prefix) gives \(a.outputCount) values, \(b.prefix) takes \(b.inputCount)")
        }
        for (head, block) in zip(exits, exitBlocks) {
            precondition(head.inputCount == blocks[block].outputCount, "\(head.prefix) takes \(head.inputCount) values, block \(block) gives \(blocks[block].outputCount)")
            precondition(head.outputCount == classes, "\(head.prefix) gives \(head.outputCount) values, expected \(classes) classes")
        }
        self.inputShape = inputShape
        self.classes = classes
        self.blocks = blocks
        self.exits = exits
        self.exitBlocks = exitBlocks
        var layout = ParameterLayoutBuilder()
        var blockStarts: [Int] = [], exitStarts: [Int] = []
        func nextOffset() -> Int { layout.parameters.last.map { $0.offset + $0.count } ?? 0 }
        for (b, block) in blocks.enumerated() {
            blockStarts.append(nextOffset())
            block.declare(into: &layout)
            for (e, head) in exits.enumerated() where exitBlocks[e] == b {
                exitStarts.append(nextOffset())
                head.declare(into: &layout)
            }
        }
        store = ParameterStore(layout: layout)
        for part in blocks + exits { part.bind(to: store) }
        blockOffsets = blockStarts
        exitOffsets = exitStarts
    }

    public var exitCount: Int { exits.count }
    public var inputCount: Int { inputShape.reduce(1, *) }
    public var batchNormLayers: [BatchNorm] { (blocks + exits).flatMap { $0.layers.compactMap { $0 as? BatchNorm } } }

    /// Initialises every parameter and buffer from `seed` (PyTorch's default schemes).
    public func initialize(seed: UInt64) {
        var generator = SeededGenerator(seed: seed, stream: 1)
        for part in blocks + exits { part.initialize(using: &generator) }
    }

    /// Allocates activations and caches for batches of up to `batch` samples.
    public func reserve(maxBatch batch: Int) {
        guard batch > maxBatch else { return }
        maxBatch = batch
        for part in blocks + exits { part.reserve(maxBatch: batch) }
        headGradient.reserve(batch * (blocks.map(\.outputCount).max() ?? 0))
    }

    /// Runs every block and every exit head; exit e's logits are then `logits(exit: e, batch:)`.
    /// - Parameter exitLimit: evaluate only exits `0..<exitLimit` and the blocks they need.
    public func forward(_ input: UnsafeBufferPointer<Float>, batch: Int, context: ForwardContext, exitLimit: Int? = nil) {
        precondition(batch <= maxBatch, "batch \(batch) exceeds the reserved \(maxBatch)")
        precondition(input.count >= batch * inputCount, "input holds \(input.count) values, batch \(batch) needs \(batch * inputCount)")
        let limit = exitLimit ?? exitCount
        var x = input
        var nextExit = 0
        for (b, block) in blocks.enumerated() {
            guard nextExit < limit else { break }
            block.forward(x, batch: batch, context: context)
            x = block.output(batch: batch)
            while nextExit < limit && exitBlocks[nextExit] == b {
                exits[nextExit].forward(x, batch: batch, context: context)
                nextExit += 1
            }
        }
    }

    public func logits(exit e: Int, batch: Int) -> UnsafeBufferPointer<Float> {
        exits[e].output(batch: batch)
    }

    /// Where the caller writes d loss / d logits of exit e before `backward`.
    public func logitGradient(exit e: Int, batch: Int) -> UnsafeMutableBufferPointer<Float> {
        exits[e].outputGradient(batch: batch)
    }

    /// Back-propagates the logit gradients of every exit into the store's gradients (overwritten).
    /// - Parameter gradientsReady: called after each head and block with the lowest parameter
    ///   offset whose gradient is now final: every gradient from there to the end is done.
    public func backward(input: UnsafeBufferPointer<Float>, batch: Int, gradientsReady: ((Int) -> Void)? = nil) {
        var exit = exitCount - 1
        for b in blocks.indices.reversed() {
            let block = blocks[b]
            let gradient = block.outputGradient(batch: batch)
            let blockInput = b == 0 ? input : blocks[b - 1].output(batch: batch)
            var received = b < blocks.count - 1   // block b + 1 wrote into it
            while exit >= 0 && exitBlocks[exit] == b {
                let head = exits[exit]
                if received {
                    let scratch = headGradient.storage.mutablePrefix(count: batch * block.outputCount)
                    head.backward(input: block.output(batch: batch), inputGradient: scratch, batch: batch)
                    Elementwise.add(UnsafeBufferPointer(scratch), to: gradient)
                } else {
                    head.backward(input: block.output(batch: batch), inputGradient: gradient, batch: batch)
                    received = true
                }
                gradientsReady?(exitOffsets[exit])
                exit -= 1
            }
            precondition(received, "block \(b) received no gradient")
            let inputGradient = b == 0 ? nil : blocks[b - 1].outputGradient(batch: batch)
            block.backward(input: blockInput, inputGradient: inputGradient, batch: batch)
            gradientsReady?(blockOffsets[b])
        }
    }

    /// Inference FLOPs for one sample that leaves at exit e: blocks up to it plus every head on the way.
    public func exitCosts() -> [Int] {
        var costs: [Int] = []
        var total = 0
        var nextBlock = 0
        for (e, block) in exitBlocks.enumerated() {
            while nextBlock <= block { total += blocks[nextBlock].inferenceFLOPs; nextBlock += 1 }
            total += exits[e].inferenceFLOPs
            costs.append(total)
        }
        return costs
    }

    /// Inference FLOPs of the network without early exits: every block and the last head.
    public var fullNetworkCost: Int {
        blocks.reduce(0) { $0 + $1.inferenceFLOPs } + exits[exitCount - 1].inferenceFLOPs
    }
}
