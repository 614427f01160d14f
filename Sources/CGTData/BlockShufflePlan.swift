import CGTRandom

/// The rows each rank reads in an epoch of `training.shuffle: blocks` (the default): the
/// training split cut into blocks of whole chunks, the blocks permuted from (seed, epoch) alike
/// on every rank and laid end to end, and that stream cut into one contiguous piece per rank.
///
/// The steps are those of `BatchPlan` (the same number, the same global batch sizes, the same
/// share of each batch per rank as in `global` mode), and rank r's piece holds exactly its
/// shares of all the epoch's steps, so every sample is in exactly one rank's piece and is
/// trained on once per epoch. A rank decompresses only the chunks of its piece: about 1/R of
/// the split, plus at most the two chunks its piece shares with its neighbours (and the split's
/// last, shorter chunk). Which samples meet in a batch is a function of (seed, epoch, R), not of
/// the seed alone as in `global` mode; the rank shuffles its piece whole (`TrainingShard`),
/// which mixes at least as well as a bounded shuffle buffer of that size. With one chunk (a
/// split smaller than `DatasetWriter.chunkRows` puts in one) the permutation has nothing to
/// move: each rank trains on the same piece every epoch, shuffled anew, as in `local` mode.
public struct BlockShufflePlan: Sendable {
    /// The steps of an epoch and each rank's share of them.
    public let batches: BatchPlan
    public let blockRows: Int

    public init(sampleCount: Int, globalBatch: Int, blockRows: Int, ranks: Int) {
        precondition(blockRows >= 1 && ranks >= 1)
        batches = BatchPlan(sampleCount: sampleCount, globalBatch: globalBatch, ranks: ranks)
        self.blockRows = blockRows
    }

    public var sampleCount: Int { batches.sampleCount }
    public var ranks: Int { batches.ranks }
    public var blockCount: Int { (sampleCount + blockRows - 1) / blockRows }

    /// The positions in the epoch's stream of rank `rank`'s piece, the same every epoch: its
    /// shares of all steps, after the shares of the ranks before it.
    public func piece(rank: Int) -> Range<Int> { start(of: rank)..<start(of: rank + 1) }

    /// The samples of ranks 0..<r over the epoch: r n / R rounded down of each step's n samples
    /// (`BatchPlan.localRange` summed), all steps but the last alike.
    private func start(of r: Int) -> Int {
        let steps = batches.stepsPerEpoch
        guard steps > 0 else { return 0 }
        let last = batches.globalRange(step: steps - 1).count
        return (steps - 1) * (r * batches.globalBatch / ranks) + r * last / ranks
    }

    /// Where in its piece rank `rank`'s samples of each step are: consecutive ranges, step by
    /// step, of the sizes `BatchPlan.localRange` gives.
    public func stepRanges(rank: Int) -> [Range<Int>] {
        var position = 0
        return (0..<batches.stepsPerEpoch).map { step in
            let count = batches.localRange(step: step, rank: rank).count
            defer { position += count }
            return position..<(position + count)
        }
    }

    /// The blocks in the order of `epoch`.
    public func blockOrder(seed: UInt64, epoch: Int) -> [Int] {
        var generator = SeededGenerator(seed: seed, stream: 0x424C_4F43 &+ UInt64(epoch))
        var order = Array(0..<blockCount)
        order.shuffle(using: &generator)
        return order
    }

    /// The rows of rank `rank`'s piece in `epoch`, in stream order.
    public func rows(seed: UInt64, epoch: Int, rank: Int) -> [Int] {
        let stream = pieceStream(seed: seed, epoch: epoch, rank: rank)
        return stream.rows(0..<stream.count)
    }

    /// Rank `rank`'s piece in `epoch` as a stream whose positions map to rows without listing them.
    public func pieceStream(seed: UInt64, epoch: Int, rank: Int) -> PieceStream {
        PieceStream(plan: self, order: blockOrder(seed: seed, epoch: epoch), piece: piece(rank: rank))
    }
}

/// One rank's piece of an epoch's stream of blocks: position p of the piece is row
/// `row(at: p)` of the split, found in O(1) from the block order, so a piece of any size is
/// streamed with memory for the order alone (one integer per block).
public struct PieceStream: Sendable {
    let plan: BlockShufflePlan
    let order: [Int]
    let piece: Range<Int>
    /// Where in the order the split's last block (the only one that may be shorter) is.
    private let lastBlockIndex: Int
    private let shortfall: Int

    init(plan: BlockShufflePlan, order: [Int], piece: Range<Int>) {
        self.plan = plan
        self.order = order
        self.piece = piece
        let last = plan.blockCount - 1
        lastBlockIndex = order.firstIndex(of: last) ?? order.count
        shortfall = last >= 0 ? plan.blockRows * plan.blockCount - plan.sampleCount : 0
    }

    /// Positions in the piece.
    public var count: Int { piece.count }

    /// The row of the split at position `position` of the piece.
    public func row(at position: Int) -> Int {
        let stream = piece.lowerBound + position
        let rows = plan.blockRows
        let shortStart = lastBlockIndex * rows
        let index: Int
        let start: Int
        if stream < shortStart + rows - shortfall {
            // Up to the short block, every block before it holds `rows`.
            index = min(stream / rows, lastBlockIndex)
            start = index * rows
        } else {
            // After it, the stream is `shortfall` behind.
            index = (stream + shortfall) / rows
            start = index * rows - shortfall
        }
        return order[index] * rows + (stream - start)
    }

    /// The rows at `positions`, in order.
    public func rows(_ positions: Range<Int>) -> [Int] { positions.map(row(at:)) }
}
