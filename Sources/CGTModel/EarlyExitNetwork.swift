import CGTKernels
import CGTRandom

/// A backbone of blocks with an exit head after some of them (Mokssit et al., Fig. 1).
///
/// Exit e reads the output of block `exitBlocks[e]`; the last exit follows the last block.
/// Parameters live in one `ParameterStore` in forward order, each block followed by the heads
/// that read it. The backward pass visits them in exactly the reverse order, so gradients
/// become final from the end of the buffer towards its start, and a bucket at the end can be
/// all-reduced while the backward pass works on the layers before it.
public final class EarlyExitNetwork {
    /// How exit e's logits come from the heads.
    public enum ExitCombination: Equatable, Sendable {
        /// Each exit answers with its own head's logits.
        case independent
        /// Exit e answers with the sum of the logits of heads 0...e, and trains head e on that
        /// sum with the earlier heads' part held fixed (BoostNet, Yu et al., AAAI 2023).
        case boosted
    }

    public let blocks: [Sequential]
    public let exits: [Sequential]
    /// For each exit, the index of the block it follows (0-based, increasing).
    public let exitBlocks: [Int]
    public let inputShape: [Int]
    public let classes: Int
    /// Outputs of each exit head: `classes`, or `classes + 1` for a shallow head with an
    /// "other" output (ClassyNet).
    public let exitOutputs: [Int]
    public let store: ParameterStore
    public private(set) var maxBatch = 0
    /// How each exit's logits are formed from the heads; `.independent` unless the job boosts.
    public var exitCombination = ExitCombination.independent {
        didSet {
            precondition(
                exitCombination == .independent || exitOutputs.allSatisfy { $0 == classes },
                "boosted exits need every head to answer the same \(classes) classes")
        }
    }
    /// Exit e's summed logits when boosted (e > 0), grown by `reserve`.
    private var ensembleLogits: [LayerCache] = []
    private let headGradient = LayerCache()
    /// The lowest parameter offset of each block and each head (the parameter count if it has none).
    private let blockOffsets: [Int]
    private let exitOffsets: [Int]

    public init(inputShape: [Int], classes: Int, blocks: [Sequential], exits: [Sequential], exitBlocks: [Int]) {
        precondition(
            !blocks.isEmpty && exits.count == exitBlocks.count && !exits.isEmpty, "a network needs blocks and exits")
        precondition(
            zip(exitBlocks, exitBlocks.dropFirst()).allSatisfy { $0 < $1 },
            "exit positions must increase: \(exitBlocks)")
        precondition(exitBlocks.last == blocks.count - 1, "the last exit must follow the last block")
        precondition(
            blocks[0].inputCount == inputShape.reduce(1, *),
            "the first block takes \(blocks[0].inputCount) values, input has \(inputShape)")
        for (a, b) in zip(blocks, blocks.dropFirst()) {
            precondition(
                a.outputCount == b.inputCount,
                "\(a.prefix) gives \(a.outputCount) values, \(b.prefix) takes \(b.inputCount)")
        }
        for (head, block) in zip(exits, exitBlocks) {
            precondition(
                head.inputCount == blocks[block].outputCount,
                "\(head.prefix) takes \(head.inputCount) values, block \(block) gives \(blocks[block].outputCount)")
        }
        for (e, head) in exits.enumerated() {
            let allowed = e == exits.count - 1 ? [classes] : [classes, classes + 1]
            precondition(
                allowed.contains(head.outputCount),
                "\(head.prefix) gives \(head.outputCount) values, expected \(classes) classes")
        }
        exitOutputs = exits.map(\.outputCount)
        self.inputShape = inputShape
        self.classes = classes
        self.blocks = blocks
        self.exits = exits
        self.exitBlocks = exitBlocks
        var layout = ParameterLayoutBuilder()
        var blockStarts: [Int] = []
        var exitStarts: [Int] = []
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
    /// Every BatchNorm, inside residual blocks too.
    public var batchNormLayers: [BatchNorm] {
        (blocks + exits).flatMap { $0.leafLayers.compactMap { $0.layer as? BatchNorm } }
    }

    /// Initialises every parameter and buffer from `seed` (PyTorch's default schemes).
    public func initialize(seed: UInt64) {
        var generator = SeededGenerator(seed: seed, stream: 1)
        for part in blocks + exits { part.initialize(using: &generator) }
    }

    /// Every oneDNN primitive a training step at `batch` runs, layer by layer, with oneDNN's
    /// implementation of each (making the primitives of that batch size if they are not made yet).
    public func primitiveImplementations(batch: Int) -> [PrimitiveImplementation] {
        (blocks + exits).flatMap { part in
            part.leafLayers.flatMap { path, layer in
                layer.primitiveImplementations(batch: batch).map { $0.run(by: path) }
            }
        }
    }

    /// The primitives of `primitiveImplementations(batch:)` that oneDNN runs on its reference
    /// code: none on a CPU whose layouts `MapLayoutChoice` could match to JIT kernels.
    public func referencePrimitives(batch: Int) -> [PrimitiveImplementation] {
        primitiveImplementations(batch: batch).filter(\.isReference)
    }

    /// Allocates activations and caches for batches of up to `batch` samples.
    public func reserve(maxBatch batch: Int) {
        guard batch > maxBatch else { return }
        maxBatch = batch
        for part in blocks + exits { part.reserve(maxBatch: batch) }
        ensembleLogits = exits.map { _ in
            let cache = LayerCache()
            cache.reserve(batch * classes)
            return cache
        }
        headGradient.reserve(batch * (blocks.map(\.outputCount).max() ?? 0))
    }

    /// Runs every block and every exit head; exit e's logits are then `logits(exit: e, batch:)`.
    /// - Parameter scope: which exits run and which blocks are frozen (inference mode);
    ///   nil runs everything in `context`'s mode.
    public func forward(
        _ input: UnsafeBufferPointer<Float>, batch: Int, context: ForwardContext, scope: TrainingScope? = nil
    ) {
        precondition(batch <= maxBatch, "batch \(batch) exceeds the reserved \(maxBatch)")
        precondition(
            input.count >= batch * inputCount,
            "input holds \(input.count) values, batch \(batch) needs \(batch * inputCount)")
        let limit = scope?.exitLimit ?? exitCount
        var frozenContext = context
        if context.isTraining { frozenContext.mode = .inference }
        var x = input
        var nextExit = 0
        for (b, block) in blocks.enumerated() {
            guard nextExit < limit else { break }
            let blockFrozen = b < (scope?.frozenBlocks ?? 0)
            block.forward(x, batch: batch, context: blockFrozen ? frozenContext : context)
            x = block.output(batch: batch)
            while nextExit < limit && exitBlocks[nextExit] == b {
                let headFrozen = blockFrozen && scope?.frozenExits.contains(nextExit) == true
                exits[nextExit].forward(x, batch: batch, context: headFrozen ? frozenContext : context)
                if exitCombination == .boosted && nextExit > 0 { sumEnsemble(exit: nextExit, batch: batch) }
                nextExit += 1
            }
        }
    }

    /// Exit e's logits of the last forward pass: its head's output, or with boosted exits the
    /// sum of the heads' outputs up to e.
    public func logits(exit e: Int, batch: Int) -> UnsafeBufferPointer<Float> {
        exitCombination == .boosted && e > 0
            ? ensembleLogits[e].storage.prefix(count: batch * classes)
            : exits[e].output(batch: batch)
    }

    /// Where the caller writes d loss / d logits of exit e before `backward`.
    ///
    /// With boosted exits the gradient of exit e's summed logits reaches head e alone: the
    /// earlier heads' part of the sum is held fixed (BoostNet's stop-gradient).
    public func logitGradient(exit e: Int, batch: Int) -> UnsafeMutableBufferPointer<Float> {
        exits[e].outputGradient(batch: batch)
    }

    /// F_e = F_(e-1) + f_e: exit e's summed logits from the previous exit's and head e's output.
    private func sumEnsemble(exit e: Int, batch: Int) {
        let sum = ensembleLogits[e].storage.mutablePrefix(count: batch * classes)
        _ = sum.update(from: exits[e].output(batch: batch))
        Elementwise.add(logits(exit: e - 1, batch: batch), to: sum)
    }

    /// Back-propagates the logit gradients of every exit into the store's gradients (overwritten).
    ///
    /// With a `scope`, only exits below its limit contribute, nothing is propagated into frozen
    /// blocks, and a frozen head on a frozen block is skipped; gradients of the parts skipped
    /// are set to zero.
    /// - Parameters:
    ///   - gradientEquilibrium: at exit e of K, the trunk receives (g_head + (K - e - 1) g_later) / (K - e)
    ///     instead of g_head + g_later (IMTA, Li et al., ICCV 2019): each trunk segment then
    ///     follows the mean of the losses of the exits after it, not their sum, so the early
    ///     blocks' gradient does not grow with the number of exits.
    ///   - gradientsReady: called after each head and block with the lowest parameter
    ///     offset whose gradient is now final: every gradient from there to the end is done.
    public func backward(
        input: UnsafeBufferPointer<Float>, batch: Int, scope: TrainingScope? = nil, gradientEquilibrium: Bool = false,
        gradientsReady: ((Int) -> Void)? = nil
    ) {
        let limit = scope?.exitLimit ?? exitCount
        let frozenBlocks = scope?.frozenBlocks ?? 0
        let lastBlock = exitBlocks[limit - 1]
        // Parameters of blocks and heads past the last exit in scope get no gradient.
        let unused = lastBlock + 1 < blocks.count ? blockOffsets[lastBlock + 1] : store.parameterCount
        UnsafeMutableBufferPointer(rebasing: store.gradients[unused...]).update(repeating: 0)
        if unused < store.parameterCount { gradientsReady?(unused) }
        var exit = limit - 1
        for b in stride(from: lastBlock, through: 0, by: -1) {
            let block = blocks[b]
            let propagates = b >= frozenBlocks
            let gradient = block.outputGradient(batch: batch)
            let blockInput = b == 0 ? input : blocks[b - 1].output(batch: batch)
            var received = b < lastBlock && propagates  // block b + 1 wrote into it
            while exit >= 0 && exitBlocks[exit] == b {
                let head = exits[exit]
                let headTrained = scope?.frozenExits.contains(exit) != true
                if !headTrained && !propagates {
                    exitParameterRange(exit).map {
                        UnsafeMutableBufferPointer(rebasing: store.gradients[$0]).update(repeating: 0)
                    }
                } else if received || !propagates {
                    let scratch = headGradient.storage.mutablePrefix(count: batch * block.outputCount)
                    head.backward(
                        input: block.output(batch: batch), inputGradient: propagates ? scratch : nil, batch: batch)
                    if propagates && gradientEquilibrium {
                        // Only reached with later exits in scope, so limit - exit >= 2.
                        let share = 1 / Float(limit - exit)
                        Elementwise.scale(gradient, by: Float(limit - exit - 1) * share)
                        Elementwise.scale(scratch, by: share)
                    }
                    if propagates { Elementwise.add(UnsafeBufferPointer(scratch), to: gradient) }
                } else {
                    head.backward(input: block.output(batch: batch), inputGradient: gradient, batch: batch)
                    received = true
                }
                gradientsReady?(exitOffsets[exit])
                exit -= 1
            }
            if propagates {
                precondition(received, "block \(b) received no gradient")
                let inputGradient = b == frozenBlocks ? nil : blocks[b - 1].outputGradient(batch: batch)
                block.backward(input: blockInput, inputGradient: inputGradient, batch: batch)
            } else {
                blockParameterRange(b).map {
                    UnsafeMutableBufferPointer(rebasing: store.gradients[$0]).update(repeating: 0)
                }
            }
            gradientsReady?(blockOffsets[b])
        }
    }

    /// The parameter ranges a step with `scope` updates: blocks from the first unfrozen one up
    /// to the last exit in scope, and the heads in scope that are not frozen.
    public func trainableRanges(_ scope: TrainingScope) -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        func add(_ range: Range<Int>?) {
            guard let range, !range.isEmpty else { return }
            if let last = ranges.last, last.upperBound == range.lowerBound {
                ranges[ranges.count - 1] = last.lowerBound..<range.upperBound
            } else {
                ranges.append(range)
            }
        }
        for b in 0...exitBlocks[scope.exitLimit - 1] {
            if b >= scope.frozenBlocks { add(blockParameterRange(b)) }
            for e in 0..<scope.exitLimit where exitBlocks[e] == b && !scope.frozenExits.contains(e) {
                add(exitParameterRange(e))
            }
        }
        return ranges
    }

    /// Where block b's parameters lie in the store (nil if it has none).
    public func blockParameterRange(_ b: Int) -> Range<Int>? {
        // The layout is block b, then its heads, then block b + 1: the block ends where the next part starts.
        let end = exitBlocks.firstIndex(of: b).map { exitOffsets[$0] } ?? nextBlockOffset(after: b)
        return blockOffsets[b] < end ? blockOffsets[b]..<end : nil
    }

    /// Where exit e's head parameters lie in the store (nil if it has none).
    public func exitParameterRange(_ e: Int) -> Range<Int>? {
        let b = exitBlocks[e]
        let end = e + 1 < exitCount && exitBlocks[e + 1] == b ? exitOffsets[e + 1] : nextBlockOffset(after: b)
        return exitOffsets[e] < end ? exitOffsets[e]..<end : nil
    }

    private func nextBlockOffset(after b: Int) -> Int {
        b + 1 < blocks.count ? blockOffsets[b + 1] : store.parameterCount
    }

    /// Inference FLOPs for one sample that leaves at exit e: blocks up to it plus every head on the way.
    public func exitCosts() -> [Int] {
        var costs: [Int] = []
        var total = 0
        var nextBlock = 0
        for (e, block) in exitBlocks.enumerated() {
            while nextBlock <= block {
                total += blocks[nextBlock].inferenceFLOPs
                nextBlock += 1
            }
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
