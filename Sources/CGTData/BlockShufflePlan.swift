import CGTRandom

/// The rows each rank reads in an epoch of `training.shuffle: blocks`: the training split cut
/// into blocks of whole chunks, the blocks permuted from (seed, epoch) alike on every rank and
/// laid end to end, and that stream cut into one contiguous piece per rank
/// (`[r S / R, (r + 1) S / R)`). Every sample is in exactly one rank's piece each epoch, and a
/// rank decompresses only the chunks of its piece: about 1/R of the split, plus at most the two
/// chunks its piece shares with its neighbours (and the split's last, shorter chunk). Which samples meet in a batch is a function
/// of (seed, epoch, R), not of R alone as in `global` mode; the rank shuffles its piece whole
/// (`TrainingShard`), which mixes at least as well as a bounded shuffle buffer of that size.
public struct BlockShufflePlan: Sendable {
    public let sampleCount: Int
    public let blockRows: Int
    public let ranks: Int

    public init(sampleCount: Int, blockRows: Int, ranks: Int) {
        precondition(blockRows >= 1 && ranks >= 1)
        self.sampleCount = sampleCount
        self.blockRows = blockRows
        self.ranks = ranks
    }

    public var blockCount: Int { (sampleCount + blockRows - 1) / blockRows }

    /// The positions in the epoch's stream of rank `rank`'s piece: the same every epoch.
    public func piece(rank: Int) -> Range<Int> {
        (rank * sampleCount / ranks)..<((rank + 1) * sampleCount / ranks)
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
        let piece = piece(rank: rank)
        var rows: [Int] = []
        rows.reserveCapacity(piece.count)
        var position = 0
        for block in blockOrder(seed: seed, epoch: epoch) {
            let blockRange = (block * blockRows)..<min(sampleCount, (block + 1) * blockRows)
            let stream = position..<(position + blockRange.count)
            position += blockRange.count
            let overlap = stream.clamped(to: piece)
            guard !overlap.isEmpty else { continue }
            let first = blockRange.lowerBound + overlap.lowerBound - stream.lowerBound
            rows += first..<(first + overlap.count)
            if position >= piece.upperBound { break }
        }
        return rows
    }
}
