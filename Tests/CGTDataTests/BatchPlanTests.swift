import CGTData
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

    func testLeftoverSamplesJoinTheLastBatchWhateverTheRanks() {
        // 103 = 10 * 10 + 3: ten steps, the last of 13 samples, on any number of ranks.
        for ranks in [1, 2, 3, 5] {
            let plan = BatchPlan(sampleCount: 103, globalBatch: 10, ranks: ranks)
            XCTAssertEqual(plan.stepsPerEpoch, 10)
            XCTAssertEqual(plan.globalRange(step: 9), 90..<103)
            XCTAssertEqual(plan.maxLocalBatch, (13 + ranks - 1) / ranks)
        }
        XCTAssertEqual(BatchPlan(sampleCount: 100, globalBatch: 10, ranks: 1).globalRange(step: 9), 90..<100)
        // Fewer samples than one batch: one step with all of them.
        XCTAssertEqual(BatchPlan(sampleCount: 7, globalBatch: 64, ranks: 2).stepsPerEpoch, 1)
        XCTAssertEqual(BatchPlan(sampleCount: 7, globalBatch: 64, ranks: 2).globalRange(step: 0), 0..<7)
        XCTAssertEqual(
            BatchPlan(sampleCount: 3, globalBatch: 64, ranks: 2).stepsPerEpoch, 0, "a rank would get fewer than two")
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
