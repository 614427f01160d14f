import CGTData
import XCTest

/// `training.shuffle: blocks`: which rows each rank reads in an epoch.
final class BlockShufflePlanTests: XCTestCase {
    /// Every sample in exactly one rank's piece each epoch, pieces as even as rows allow, the
    /// same for the same (seed, epoch, ranks), another order in another epoch; a rank touches
    /// only the blocks of its piece: at most piece / block + 2 of them, one more for the split's
    /// last, shorter block.
    func testPiecesPartitionTheSplitAndTouchFewBlocks() {
        for (samples, blockRows, ranks) in [(1000, 64, 4), (1000, 64, 1), (6149, 327, 4), (100, 7, 3), (10, 64, 2)] {
            let plan = BlockShufflePlan(sampleCount: samples, blockRows: blockRows, ranks: ranks)
            var previous: [[Int]] = []
            for epoch in 0..<3 {
                let pieces = (0..<ranks).map { plan.rows(seed: 5, epoch: epoch, rank: $0) }
                XCTAssertEqual(pieces.flatMap { $0 }.sorted(), Array(0..<samples), "\(samples) \(blockRows) \(ranks)")
                for (rank, piece) in pieces.enumerated() {
                    XCTAssertEqual(piece.count, plan.piece(rank: rank).count)
                    let blocks = Set(piece.map { $0 / blockRows })
                    let short = samples % blockRows == 0 ? 0 : 1
                    XCTAssertLessThanOrEqual(blocks.count, piece.count / blockRows + 2 + short)
                }
                XCTAssertEqual(pieces, (0..<ranks).map { plan.rows(seed: 5, epoch: epoch, rank: $0) })
                if plan.blockCount > 2 && !previous.isEmpty { XCTAssertNotEqual(pieces, previous) }
                previous = pieces
            }
        }
    }

    /// Blocks stay whole in the stream: inside a piece, rows run in blocks of consecutive rows
    /// (at most the first and last block of a piece are cut), in an order the seed sets.
    func testBlocksStayWholeAndTheSeedSetsTheirOrder() {
        let plan = BlockShufflePlan(sampleCount: 640, blockRows: 64, ranks: 2)
        let rows = plan.rows(seed: 1, epoch: 0, rank: 0)
        let breaks = zip(rows, rows.dropFirst()).filter { $1 != $0 + 1 }.count
        XCTAssertEqual(breaks, 4, "5 whole blocks, 4 jumps between them")
        XCTAssertNotEqual(plan.blockOrder(seed: 1, epoch: 0), plan.blockOrder(seed: 2, epoch: 0))
        XCTAssertEqual(Set(plan.blockOrder(seed: 1, epoch: 0)), Set(0..<10))
    }
}
