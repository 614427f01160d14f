import CGTRandom
import XCTest

@testable import CGTData

/// The bounded shuffle buffer's order, and the position-to-row map of a piece's stream.
final class ShuffleBufferTests: XCTestCase {
    /// Simulates the buffer with the samples themselves (an array of positions per slot),
    /// checking that a step's slots hold what `take` says and are refilled in stream order.
    private func run(capacity: Int, stream: Int, steps: [Int], seed: UInt64) -> [[Int]] {
        var buffer = ShuffleBuffer(
            capacity: capacity, streamCount: stream, generator: SeededGenerator(seed: seed, stream: 7))
        var slotValue = [Int](repeating: -1, count: capacity)
        for refill in buffer.initialFill { slotValue[refill.slot] = refill.position }
        var slots: [Int] = []
        var refills: [ShuffleBuffer.Refill] = []
        var taken: [[Int]] = []
        var nextExpected = min(capacity, stream)
        for count in steps {
            buffer.take(count, slots: &slots, refills: &refills)
            XCTAssertEqual(Set(slots).count, count, "a step's slots are distinct")
            let values = slots.map { slotValue[$0] }
            XCTAssertFalse(values.contains(-1), "a step takes only filled slots")
            taken.append(values)
            for slot in slots { slotValue[slot] = -1 }
            for refill in refills {
                XCTAssertEqual(refill.position, nextExpected, "refills follow the stream")
                XCTAssertEqual(slotValue[refill.slot], -1, "a refill goes into an emptied slot")
                slotValue[refill.slot] = refill.position
                nextExpected += 1
            }
            XCTAssertEqual(Set(buffer.heldPositions), Set(slotValue.filter { $0 >= 0 }))
            XCTAssertEqual(buffer.count, slotValue.filter { $0 >= 0 }.count)
        }
        return taken
    }

    /// Every sample is taken exactly once; the buffer never holds more than its capacity; a
    /// sample is taken no earlier than it can be (position p enters the buffer only once p -
    /// capacity samples have left), and the order is a function of the seed.
    func testEverySampleOnceAndBoundedLookAhead() {
        for (capacity, stream, batch) in [(1, 50, 1), (10, 100, 7), (100, 1000, 48), (500, 300, 30), (33, 33, 11)] {
            let steps = (0..<(stream / batch)).map { $0 == stream / batch - 1 ? batch + stream % batch : batch }
            let taken = run(capacity: capacity, stream: stream, steps: steps, seed: 3)
            XCTAssertEqual(taken.flatMap { $0 }.sorted(), Array(0..<stream))
            var before = 0
            for step in taken {
                // Samples taken before this step plus the capacity bound what the buffer can have seen.
                XCTAssertLessThan(step.max()!, before + step.count + capacity)
                before += step.count
            }
            XCTAssertEqual(taken, run(capacity: capacity, stream: stream, steps: steps, seed: 3))
            if capacity > 1 && stream > capacity {
                XCTAssertNotEqual(taken, run(capacity: capacity, stream: stream, steps: steps, seed: 4))
            }
        }
        // A buffer of one sample hands the stream out in order.
        XCTAssertEqual(
            run(capacity: 1, stream: 20, steps: Array(repeating: 1, count: 20), seed: 9).flatMap { $0 }, Array(0..<20))
    }

    /// A buffer as large as the stream draws every step uniformly from what is left: over many
    /// seeds each sample is about equally often in the first step.
    func testAWholeBufferDrawsUniformly() {
        var counts = [Int](repeating: 0, count: 20)
        for seed in 0..<2000 {
            let taken = run(capacity: 20, stream: 20, steps: [5, 5, 10], seed: UInt64(seed))
            for position in taken[0] { counts[position] += 1 }
        }
        // 2000 draws of 5 of 20: 500 expected per sample, standard deviation about 19.
        for count in counts { XCTAssertEqual(Double(count), 500, accuracy: 100) }
    }

    /// `PieceStream.row(at:)` gives the rows the block plan lays out, for splits whose last
    /// block is short or whole, on every rank.
    func testPieceStreamMapsPositionsToTheBlockPlansRows() {
        for (samples, blockRows, ranks, batch) in [
            (1001, 55, 3, 48), (1000, 50, 2, 40), (97, 100, 1, 10), (500, 7, 4, 16),
        ] {
            let plan = BlockShufflePlan(sampleCount: samples, globalBatch: batch, blockRows: blockRows, ranks: ranks)
            for epoch in 0..<3 {
                // The reference: the blocks in order, laid end to end, cut at the piece.
                let order = plan.blockOrder(seed: 5, epoch: epoch)
                let streamRows = order.flatMap { block in (block * blockRows)..<min(samples, (block + 1) * blockRows) }
                for rank in 0..<ranks {
                    let piece = plan.piece(rank: rank)
                    let stream = plan.pieceStream(seed: 5, epoch: epoch, rank: rank)
                    XCTAssertEqual(stream.rows(0..<stream.count), Array(streamRows[piece]))
                }
            }
        }
    }
}
