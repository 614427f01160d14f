import CGTTraining
import XCTest

/// Which samples each step and rank see.
final class BatchPlanTests: XCTestCase {
    func testRanksPartitionEveryGlobalBatch() {
        for (n, batch, ranks) in [(103, 10, 1), (103, 10, 3), (64, 16, 4), (10, 4, 2)] {
            let plan = BatchPlan(sampleCount: n, globalBatch: batch, ranks: ranks)
            var seen: [Int] = []
            for step in 0..<plan.stepsPerEpoch {
                let global = plan.globalRange(step: step)
                let parts = (0..<ranks).map { plan.localRange(step: step, rank: $0) }
                XCTAssertEqual(parts.first?.lowerBound, global.lowerBound)
                XCTAssertEqual(parts.last?.upperBound, global.upperBound)
                for (a, b) in zip(parts, parts.dropFirst()) { XCTAssertEqual(a.upperBound, b.lowerBound) }
                XCTAssertTrue(parts.allSatisfy { $0.count >= 2 }, "every rank gets two samples or more")
                seen += Array(global)
            }
            XCTAssertEqual(seen, Array(0..<seen.count), "steps cover the order without gaps or repeats")
        }
    }

    func testPartialBatchRule() {
        // 103 = 10 * 10 + 3: the 3 left over make a step on 1 rank (3 >= 2) but not on 2 ranks (3 < 4).
        XCTAssertEqual(BatchPlan(sampleCount: 103, globalBatch: 10, ranks: 1).stepsPerEpoch, 11)
        XCTAssertEqual(BatchPlan(sampleCount: 103, globalBatch: 10, ranks: 2).stepsPerEpoch, 10)
        XCTAssertEqual(BatchPlan(sampleCount: 101, globalBatch: 10, ranks: 1).stepsPerEpoch, 10)
        XCTAssertEqual(BatchPlan(sampleCount: 100, globalBatch: 10, ranks: 1).stepsPerEpoch, 10)
    }

    func testOrderIsASeededPermutation() {
        let plan = BatchPlan(sampleCount: 50, globalBatch: 10, ranks: 1)
        let a = plan.order(seed: 1, epoch: 0)
        XCTAssertEqual(a.sorted(), Array(0..<50))
        XCTAssertEqual(a, plan.order(seed: 1, epoch: 0))
        XCTAssertNotEqual(a, plan.order(seed: 1, epoch: 1))
        XCTAssertNotEqual(a, plan.order(seed: 2, epoch: 0))
    }
}
