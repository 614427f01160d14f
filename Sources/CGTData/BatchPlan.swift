import CGTRandom

/// Which samples each optimizer step uses, on every rank.
///
/// An epoch visits the training split in an order shuffled from (seed, epoch), so a run is
/// reproducible and a resumed run sees the same order. There are floor(N / B) steps (one if
/// N < B); step s takes the global batch `order[s * B ..< (s + 1) * B]`, and the last step also
/// takes the N mod B samples left over, so no sample is skipped and the steps do not depend on
/// the number of ranks. Rank r of R takes the contiguous part `[r * n / R, (r + 1) * n / R)` of
/// a batch's n samples, so the ranks together see exactly the samples a 1-rank run sees, and
/// each gets at least two (B >= 2R), as BatchNorm needs. The loss of a step is divided by the
/// true number of samples in its global batch.
public struct BatchPlan: Sendable {
    public let sampleCount: Int
    public let globalBatch: Int
    public let ranks: Int

    public init(sampleCount: Int, globalBatch: Int, ranks: Int) {
        precondition(
            globalBatch >= 2 * ranks,
            "a global batch of \(globalBatch) gives some of the \(ranks) ranks fewer than two samples")
        self.sampleCount = sampleCount
        self.globalBatch = globalBatch
        self.ranks = ranks
    }

    public var stepsPerEpoch: Int {
        sampleCount >= 2 * ranks ? max(1, sampleCount / globalBatch) : 0
    }

    /// The most samples one rank gets in a step.
    public var maxLocalBatch: Int {
        let largest = stepsPerEpoch > 0 ? globalRange(step: stepsPerEpoch - 1).count : 0
        return (largest + ranks - 1) / ranks
    }

    /// The positions of the split in the order of `epoch`.
    public func order(seed: UInt64, epoch: Int) -> [Int] {
        var generator = SeededGenerator(seed: seed, stream: 0x5348_5546 &+ UInt64(epoch))
        var order = Array(0..<sampleCount)
        order.shuffle(using: &generator)
        return order
    }

    /// The global batch of `step` as a range of positions in the epoch's order.
    public func globalRange(step: Int) -> Range<Int> {
        let start = step * globalBatch
        return start..<(step == stepsPerEpoch - 1 ? sampleCount : start + globalBatch)
    }

    /// The rows of the split rank `rank` trains on in `epoch`, step after step (what it reads
    /// at the epoch's start), and the positions in them of each step's part.
    public func rows(seed: UInt64, epoch: Int, rank: Int) -> (rows: [Int], steps: [Range<Int>]) {
        let epochOrder = order(seed: seed, epoch: epoch)
        var rows: [Int] = []
        var steps: [Range<Int>] = []
        rows.reserveCapacity((sampleCount + ranks - 1) / ranks)
        for step in 0..<stepsPerEpoch {
            let local = localRange(step: step, rank: rank)
            steps.append(rows.count..<(rows.count + local.count))
            rows += epochOrder[local]
        }
        return (rows, steps)
    }

    /// This rank's part of the global batch of `step`.
    public func localRange(step: Int, rank: Int) -> Range<Int> {
        let global = globalRange(step: step)
        let n = global.count
        return (global.lowerBound + rank * n / ranks)..<(global.lowerBound + (rank + 1) * n / ranks)
    }
}
