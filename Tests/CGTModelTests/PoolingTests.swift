import CGTKernels
import CGTRandom
import CGTTestSupport
import XCTest

@testable import CGTModel

/// `MaxPool2D`, `GlobalAveragePool` and `Flatten`: shapes, FLOP counts and finite-difference gradients.
final class PoolingTests: XCTestCase {
    let channels = 3, height = 7, width = 9, batch = 2

    /// Distinct values at least 0.1 apart in random order: a step of 1e-2 never changes a window's maximum.
    private func distinctValues(_ count: Int, seed: UInt64) -> [Float] {
        var generator = SeededGenerator(seed: seed)
        return (0..<count).shuffled(using: &generator).map { Float($0) * 0.1 - Float(count) * 0.05 }
    }

    func testMaxPoolShapesFloorOddSides() {
        let pool = MaxPool2D(shape: [channels, height, width])
        XCTAssertEqual(pool.name, "pool")
        XCTAssertEqual(pool.outputShape, [3, 3, 4])
        // 3 comparisons for each of the 3 * 3 * 4 outputs.
        XCTAssertEqual(pool.inferenceFLOPs, 108)
        XCTAssertEqual(MaxPool2D(shape: [2, 2, 3]).outputShape, [2, 1, 1])
    }

    func testMaxPoolForwardTakesEachWindowMaximum() {
        let harness = LayerHarness(MaxPool2D(shape: [channels, height, width]), batch: batch)
        let x = Fixtures.normals(batch * channels * height * width, seed: 1)
        let y = harness.forward(x, context: ForwardContext(mode: .inference))
        var expected: [Float] = []
        for plane in 0..<(batch * channels) {
            for oy in 0..<3 {
                for ox in 0..<4 {
                    let window = [(0, 0), (0, 1), (1, 0), (1, 1)].map {
                        x[plane * height * width + (2 * oy + $0.0) * width + 2 * ox + $0.1]
                    }
                    expected.append(window.max()!)
                }
            }
        }
        assertExactlyEqual(y, expected)
    }

    func testMaxPoolGradientMatchesFiniteDifferences() {
        let harness = LayerHarness(MaxPool2D(shape: [channels, height, width]), batch: batch)
        var x = distinctValues(batch * channels * height * width, seed: 2)
        let weights = Fixtures.normals(batch * 3 * 3 * 4, seed: 3)
        let context = ForwardContext(mode: .training)
        let loss = { (input: [Float]) in weightedSum(harness.forward(input, context: context), weights) }
        let analytic = harness.gradients(input: x, outputGradient: weights, context: context)
        assertGradientMatches(analytic, FiniteDifference.gradient(of: &x, step: 1e-2, loss: loss), "dx")
        // Exactly one input per window gets a gradient; the dropped last row and column get none.
        XCTAssertEqual(analytic.filter { $0 != 0 }.count, batch * 3 * 3 * 4)
        for plane in 0..<(batch * channels) {
            for column in 0..<width { XCTAssertEqual(analytic[plane * height * width + 6 * width + column], 0) }
            for row in 0..<height { XCTAssertEqual(analytic[plane * height * width + row * width + 8], 0) }
        }
    }

    func testGlobalAveragePoolForwardAndGradient() {
        let gap = GlobalAveragePool(shape: [channels, height, width])
        XCTAssertEqual(gap.name, "gap")
        XCTAssertEqual(gap.outputShape, [3])
        // 1 per input value.
        XCTAssertEqual(gap.inferenceFLOPs, 189)
        let harness = LayerHarness(gap, batch: batch)
        var x = Fixtures.normals(batch * channels * height * width, seed: 4)
        let y = harness.forward(x, context: ForwardContext(mode: .training))
        let means = (0..<(batch * channels)).map { p in
            Float(x[(p * 63)..<((p + 1) * 63)].reduce(0.0) { $0 + Double($1) } / 63)
        }
        assertAllClose(y, means, relative: 1e-5, absolute: 1e-6)

        let weights = Fixtures.normals(batch * channels, seed: 5)
        let context = ForwardContext(mode: .training)
        let loss = { (input: [Float]) in weightedSum(harness.forward(input, context: context), weights) }
        let analytic = harness.gradients(input: x, outputGradient: weights, context: context)
        assertGradientMatches(analytic, FiniteDifference.gradient(of: &x, step: 1e-2, loss: loss), "dx")
    }

    func testFlattenOnlyChangesTheShape() {
        let flatten = Flatten(shape: [channels, height, width])
        XCTAssertEqual(flatten.outputShape, [189])
        XCTAssertEqual(flatten.inferenceFLOPs, 0)
        let harness = LayerHarness(flatten, batch: batch)
        let x = Fixtures.normals(batch * 189, seed: 6)
        let dy = Fixtures.normals(batch * 189, seed: 7)
        assertExactlyEqual(harness.forward(x, context: ForwardContext(mode: .inference)), x)
        assertExactlyEqual(
            harness.gradients(input: x, outputGradient: dy, context: ForwardContext(mode: .training)), dy)
    }
}
