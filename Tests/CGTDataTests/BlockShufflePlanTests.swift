import CGTData
import XCTest

/// `training.shuffle: blocks`: which rows each rank reads in an epoch, and the steps it trains
/// them in.
final class BlockShufflePlanTests: XCTestCase {
    /// Every sample in exactly one rank's piece each epoch, each piece exactly the rank's shares
    /// of the steps of `BatchPlan` (so no sample is left out, whatever the batch), the same for the
    /// same (seed, epoch, ranks), another order in another epoch; a rank touches only the blocks
    /// of its piece: at most piece / block + 2 of them, one more for the split's last, shorter
    /// block.
    func testPiecesPartitionTheSplitAndTouchFewBlocks() {
        for (samples, batch, blockRows, ranks) in [
            (1000, 64, 64, 4), (1000, 64, 64, 1), (7174, 64, 113, 4), (7174, 64, 327, 4), (100, 9, 7, 3),
            (10, 64, 64, 2), (32, 64, 32, 1), (1001, 48, 55, 3),
        ] {
            let plan = BlockShufflePlan(sampleCount: samples, globalBatch: batch, blockRows: blockRows, ranks: ranks)
            let batches = BatchPlan(sampleCount: samples, globalBatch: batch, ranks: ranks)
            let label = "\(samples) samples, batch \(batch), blocks of \(blockRows), \(ranks) ranks"
            var previous: [[Int]] = []
            for rank in 0..<ranks {
                let shares = (0..<batches.stepsPerEpoch).map { batches.localRange(step: $0, rank: rank).count }
                XCTAssertEqual(plan.piece(rank: rank).count, shares.reduce(0, +), label)
                XCTAssertEqual(plan.stepRanges(rank: rank).map(\.count), shares, label)
                XCTAssertEqual(plan.stepRanges(rank: rank).last?.upperBound ?? 0, plan.piece(rank: rank).count)
            }
            for epoch in 0..<3 {
                let pieces = (0..<ranks).map { plan.rows(seed: 5, epoch: epoch, rank: $0) }
                XCTAssertEqual(pieces.flatMap { $0 }.sorted(), Array(0..<samples), label)
                for (rank, piece) in pieces.enumerated() {
                    XCTAssertEqual(piece.count, plan.piece(rank: rank).count)
                    let blocks = Set(piece.map { $0 / blockRows })
                    let short = samples % blockRows == 0 ? 0 : 1
                    XCTAssertLessThanOrEqual(blocks.count, piece.count / blockRows + 2 + short, label)
                }
                XCTAssertEqual(pieces, (0..<ranks).map { plan.rows(seed: 5, epoch: epoch, rank: $0) })
                if plan.blockCount > 2 && !previous.isEmpty { XCTAssertNotEqual(pieces, previous, label) }
                previous = pieces
            }
        }
    }

    /// Blocks stay whole in the stream: inside a piece, rows run in blocks of consecutive rows
    /// (at most the first and last block of a piece are cut), in an order the seed sets.
    func testBlocksStayWholeAndTheSeedSetsTheirOrder() {
        let plan = BlockShufflePlan(sampleCount: 640, globalBatch: 64, blockRows: 64, ranks: 2)
        let rows = plan.rows(seed: 1, epoch: 0, rank: 0)
        let breaks = zip(rows, rows.dropFirst()).filter { $1 != $0 + 1 }.count
        XCTAssertEqual(breaks, 4, "5 whole blocks, 4 jumps between them")
        XCTAssertNotEqual(plan.blockOrder(seed: 1, epoch: 0), plan.blockOrder(seed: 2, epoch: 0))
        XCTAssertEqual(Set(plan.blockOrder(seed: 1, epoch: 0)), Set(0..<10))
    }
}
