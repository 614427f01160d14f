import CGTData
import CGTFiles
import CGTJob
import CGTRandom

/// The rows BatchNorm statistics are re-estimated over before an evaluation, and how the ranks
/// share them: a fixed, seeded subset of the training split, bounded in size, of which each
/// rank reads about 1/R.
///
/// The split is cut into blocks of whole chunks (as `BlockShufflePlan` cuts it); the blocks
/// are permuted from the seed and laid end to end, each with its rows in an order shuffled
/// from (seed, block), and the first K b rows of that stream are the subset: b = min(global
/// batch, split) rows per batch and K = min(`eval.bn_recalibration_batches`, split / b)
/// batches. The stream is read as b lanes of K consecutive rows, and batch k takes the k-th row
/// of every lane, so one batch draws its rows from up to b different chunks (a mix close to
/// the uniform batches of training) while the batches are a function of the seed alone. Rank r
/// of R takes the lanes `[r b / R, (r + 1) b / R)`, a contiguous range of the stream: it
/// decompresses only the chunks of that range (about 1/R of the subset's, plus the two it may
/// share with its neighbours) and holds about K b / R rows. Rank r's part of every batch is its
/// lanes' rows, after those of the ranks before it: the ranks together form exactly the batches
/// of one process, so with BatchNorm statistics summed over ranks any number of ranks gives the
/// estimate of one (up to the rounding of the sums).
public struct RecalibrationPlan: Sendable, Equatable {
    public let sampleCount: Int
    public let blockRows: Int
    /// Rows per batch (b) and batches (K).
    public let batchRows: Int
    public let batchCount: Int
    public let seed: UInt64

    public init(sampleCount: Int, globalBatch: Int, maxBatches: Int, blockRows: Int, seed: UInt64) {
        precondition(globalBatch >= 1 && maxBatches >= 1 && blockRows >= 1)
        self.sampleCount = sampleCount
        self.blockRows = blockRows
        self.seed = seed
        batchRows = min(globalBatch, sampleCount)
        batchCount = batchRows > 0 ? min(maxBatches, sampleCount / batchRows) : 0
    }

    /// The rows of the subset (K b).
    public var rowCount: Int { batchRows * batchCount }
    public var blockCount: Int { (sampleCount + blockRows - 1) / blockRows }

    /// The lanes of rank `rank` of `ranks`.
    public func lanes(rank: Int, of ranks: Int) -> Range<Int> {
        (rank * batchRows / ranks)..<((rank + 1) * batchRows / ranks)
    }

    /// The positions in the stream of rank `rank`'s rows.
    public func piece(rank: Int, of ranks: Int) -> Range<Int> {
        let lanes = lanes(rank: rank, of: ranks)
        return (lanes.lowerBound * batchCount)..<(lanes.upperBound * batchCount)
    }

    /// The blocks in stream order.
    public func blockOrder() -> [Int] {
        var generator = SeededGenerator(seed: seed, stream: 0x424E_5245)
        var order = Array(0..<blockCount)
        order.shuffle(using: &generator)
        return order
    }

    /// The rows of `block` in stream order.
    public func rowOrder(block: Int) -> [Int] {
        var generator = SeededGenerator(seed: seed, stream: 0x424E_524F &+ UInt64(block) &* 0x1_0000)
        var rows = Array((block * blockRows)..<min(sampleCount, (block + 1) * blockRows))
        rows.shuffle(using: &generator)
        return rows
    }

    /// The split rows of stream positions `piece`, grouped by the block that holds them (in
    /// stream order): what a rank reads, one block at a time.
    public func blockRows(of piece: Range<Int>) -> [(block: Int, rows: [Int])] {
        var result: [(block: Int, rows: [Int])] = []
        guard !piece.isEmpty else { return result }
        var position = 0
        for block in blockOrder() {
            let size = min(sampleCount, (block + 1) * blockRows) - block * blockRows
            let stream = position..<(position + size)
            position += size
            let overlap = stream.clamped(to: piece)
            if !overlap.isEmpty {
                let order = rowOrder(block: block)
                let first = overlap.lowerBound - stream.lowerBound
                result.append((block, Array(order[first..<(first + overlap.count)])))
            }
            if position >= piece.upperBound { break }
        }
        return result
    }

    /// Rank `rank`'s part of every batch, as positions in its piece: batch k takes the k-th
    /// row of each of its lanes.
    public func batches(rank: Int, of ranks: Int) -> [ArraySlice<Int>] {
        let laneCount = lanes(rank: rank, of: ranks).count
        let k = batchCount
        return (0..<k).map { batch in ArraySlice((0..<laneCount).map { $0 * k + batch }) }
    }
}

/// One rank's rows of the BatchNorm re-estimation batches and the batches as positions into them.
public struct RecalibrationShare {
    public let data: DatasetSplit
    public let batches: [ArraySlice<Int>]
}

extension Job {
    /// The subset of the training split BatchNorm statistics are re-estimated over (seeded by
    /// `training.seed`, at most `eval.bn_recalibration_batches` global batches of
    /// `training.batch_size`). Training's own evaluation and `cgt eval` use the same one, so
    /// they agree.
    public func recalibrationPlan(reader: DatasetReader) throws -> RecalibrationPlan {
        RecalibrationPlan(
            sampleCount: reader.splitSizes[.train] ?? 0, globalBatch: training.batchSize,
            maxBatches: eval.bnRecalibrationBatches, blockRows: try reader.chunkRows(of: .train), seed: training.seed)
    }

    /// Rank `rank`'s rows of the BatchNorm re-estimation (`recalibrationPlan`), read from
    /// `reader`'s training split, and its part of every batch as positions into them.
    ///
    /// The rank reads, in file order, the rows from the first to the last of its piece's rows
    /// in each block (`DatasetReader.read(split:runs:)`): each chunk is decompressed once, and
    /// none outside its piece but the two it may share with its neighbours, whose other rows
    /// it holds unused. Local work that can fail on one rank alone;
    /// `DistributedEvaluation.recalibrateBatchNorm(on:)` is the collective.
    public func recalibrationShare(reader: DatasetReader, rank: Int, ranks: Int) throws -> RecalibrationShare {
        let plan = try recalibrationPlan(reader: reader)
        let blocks = plan.blockRows(of: plan.piece(rank: rank, of: ranks))
        let runs = blocks.map { $0.rows.min()!..<($0.rows.max()! + 1) }
        let order = runs.indices.sorted { runs[$0].lowerBound < runs[$1].lowerBound }
        var runStart = [Int](repeating: 0, count: runs.count)
        var offset = 0
        for index in order {
            runStart[index] = offset
            offset += runs[index].count
        }
        if let refusal = MemoryBudget.refusal([offset, reader.featureCount], elementSize: MemoryLayout<Float>.size) {
            throw DatasetError(
                file: reader.path, object: "/train/x",
                "the BatchNorm re-estimation's \(offset) rows on this rank \(refusal); lower eval.bn_recalibration_batches or training.batch_size, or use more ranks"
            )
        }
        let data = try reader.read(split: .train, runs: order.map { runs[$0] })
        // Where each row of the piece, in stream order, is in `data`.
        var position: [Int] = []
        position.reserveCapacity(offset)
        for (index, block) in blocks.enumerated() {
            position += block.rows.map { runStart[index] + $0 - runs[index].lowerBound }
        }
        return RecalibrationShare(
            data: data, batches: plan.batches(rank: rank, of: ranks).map { ArraySlice($0.map { position[$0] }) })
    }
}
