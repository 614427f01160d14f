import CGTData
import XCTest

/// Seeded, stratified splits: sizes follow the documented rounding rule, classes keep their
/// shares, seeds reproduce, and every split is a partition of the samples.
final class SplitterTests: XCTestCase {
    func labels(counts: [Int]) -> [Int32] {
        // Interleaved, so that class membership is not a block of indices.
        var result: [Int32] = []
        var left = counts
        while left.contains(where: { $0 > 0 }) {
            for c in left.indices where left[c] > 0 {
                result.append(Int32(c))
                left[c] -= 1
            }
        }
        return result
    }

    func testFractionsParseExactly() {
        XCTAssertEqual(SplitFraction("0.3")?.numerator, 3)
        XCTAssertEqual(SplitFraction("0.3")?.denominator, 10)
        XCTAssertEqual(SplitFraction(".25")?.description, "0.25")
        XCTAssertEqual(SplitFraction("5e-2")?.description, "0.05")
        XCTAssertEqual(SplitFraction("0.300")?.denominator, 10)
        XCTAssertEqual(SplitFraction("0")?.isZero, true)
        XCTAssertEqual(SplitFraction(0.1)?.description, "0.1")
        for bad in ["1", "1.5", "-0.1", "abc", "0.1234567891", "", "."] { XCTAssertNil(SplitFraction(bad), bad) }
        XCTAssertEqual(SplitFraction("0.3")!.of(5), 2, "1.5 rounds half up")
        XCTAssertEqual(SplitFraction("0.3")!.of(2455), 737, "736.5 rounds half up, exactly")
        XCTAssertEqual(SplitFraction("0.3")!.of(10_249), 3075)
    }

    /// The rule on a table worked by hand: N = 10, f = 0.5, classes of 5, 3 and 2.
    /// T = 5; floors 2, 1, 1 (sum 4); remainders 0.5, 0.5, 0: the one left over goes to class 0 (tie, smaller id).
    func testStratifiedCountsFollowTheRoundingRule() {
        let split = Splitter.split(
            labels: labels(counts: [5, 3, 2]), classes: 3,
            plan: SplitPlan(testFraction: SplitFraction("0.5")!, seed: 1))
        let y = labels(counts: [5, 3, 2])
        XCTAssertEqual([0, 1, 2].map { c in split.test.filter { y[$0] == c }.count }, [3, 1, 1])
        XCTAssertEqual(split.test.count + split.train.count, 10)
    }

    /// Indian Pines' class sizes with f = 0.3: the test split has exactly round(0.3 * 10249) = 3075
    /// pixels, and each class is within one pixel of 30 %.
    func testIndianPinesSharesAreKept() {
        let counts = [46, 1428, 830, 237, 483, 730, 28, 478, 20, 972, 2455, 593, 205, 1265, 386, 93]
        let y = labels(counts: counts)
        let split = Splitter.split(
            labels: y, classes: 16, plan: SplitPlan(testFraction: SplitFraction("0.3")!, seed: 0))
        XCTAssertEqual(split.test.count, 3075)
        XCTAssertEqual(split.train.count, 7174)
        for (c, n) in counts.enumerated() {
            let test = split.test.filter { y[$0] == c }.count
            XCTAssertLessThan(abs(Double(test) - 0.3 * Double(n)), 1, "class \(c): \(test) of \(n)")
        }
    }

    func testSplitsArePartitionsInSourceOrderAndReproducible() {
        let y = labels(counts: [40, 25, 9, 3])
        let plan = SplitPlan(testFraction: SplitFraction("0.25")!, validationFraction: SplitFraction("0.15")!, seed: 42)
        let split = Splitter.split(labels: y, classes: 4, plan: plan)
        XCTAssertEqual((split.train + split.validation + split.test).sorted(), Array(y.indices))
        for part in [split.train, split.validation, split.test] { XCTAssertEqual(part, part.sorted()) }
        XCTAssertEqual(Splitter.split(labels: y, classes: 4, plan: plan), split, "same seed, same split")
        var other = plan
        other.seed = 43
        XCTAssertNotEqual(
            Splitter.split(labels: y, classes: 4, plan: other).test, split.test, "another seed, another split")
        XCTAssertEqual(split.test.count, SplitFraction("0.25")!.of(77))
        XCTAssertEqual(split.validation.count, SplitFraction("0.15")!.of(77))
        for c in 0..<4 { XCTAssertTrue(split.train.contains { y[$0] == c }, "class \(c) keeps a training sample") }
    }

    func testAClassIsNeverLeftWithoutTrainingSamples() {
        let y = labels(counts: [1, 2, 10])
        let split = Splitter.split(labels: y, classes: 3, plan: SplitPlan(testFraction: SplitFraction("0.6")!, seed: 0))
        XCTAssertEqual(
            [0, 1, 2].map { c in split.train.filter { y[$0] == c }.count }.map { $0 >= 1 }, [true, true, true])
    }

    func testUnstratifiedSizes() {
        let y = labels(counts: [50, 50, 1])
        let split = Splitter.split(
            labels: y, classes: 3, plan: SplitPlan(testFraction: SplitFraction("0.2")!, stratified: false, seed: 5))
        XCTAssertEqual(split.test.count, 20)
        XCTAssertEqual(split.train.count, 81)
    }
}
