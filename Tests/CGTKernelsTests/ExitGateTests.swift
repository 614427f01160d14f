import CGTKernels
import CGTTestSupport
import Foundation
import XCTest

final class ExitGateTests: XCTestCase {
    private func hard(confidence: [Float], predictions: [Int32], labels: [Int32], exits: Int, tau: Float) -> [Float] {
        var weights = [Float](repeating: .nan, count: exits * labels.count)
        confidence.withUnsafeBufferPointer { s in
            predictions.withUnsafeBufferPointer { p in
                labels.withUnsafeBufferPointer { y in
                    weights.withUnsafeMutableBufferPointer {
                        ExitGates.hard(
                            confidence: s, predictions: p, labels: y, exits: exits, batch: labels.count, tau: tau,
                            weights: $0)
                    }
                }
            }
        }
        return weights
    }

    private func soft(scores: [Float], exits: Int, batch: Int, tau: Float, k: Float) -> [Float] {
        var weights = [Float](repeating: .nan, count: exits * batch)
        scores.withUnsafeBufferPointer { s in
            weights.withUnsafeMutableBufferPointer {
                ExitGates.soft(scores: s, exits: exits, batch: batch, tau: tau, sharpness: k, weights: $0)
            }
        }
        return weights
    }

    /// HardCGT on a hand-built batch of 5 samples and 3 exits with tau = 0.5.
    ///
    /// Exit 0 is confident and correct for samples 0 and 3 (sample 3 exactly at tau); exit 1 for
    /// samples 0, 1 and 2. Sample 4 is never confidently correct, so it keeps weight 1 everywhere.
    func testHardGatesOnAHandComputedExample() {
        let labels: [Int32] = [0, 1, 2, 1, 0]
        let predictions: [Int32] = [
            0, 1, 0, 1, 2,  // exit 0: correct for 0, 1, 3
            0, 1, 2, 0, 1,  // exit 1: correct for 0, 1, 2
            2, 2, 2, 2, 0,  // exit 2: its own outcome never matters
        ]
        let confidence: [Float] = [
            0.9, 0.4, 0.95, 0.5, 0.8,  // sample 1 is correct but below tau; sample 2 confident but wrong
            0.99, 0.7, 0.6, 0.9, 0.3,  // sample 4 is wrong again
            1, 1, 1, 1, 1,
        ]
        let expected: [Float] = [
            1, 1, 1, 1, 1,  // lambda_1 = 1
            0, 1, 1, 0, 1,  // 1 - delta_0
            0, 0, 0, 0, 1,  // (1 - delta_0)(1 - delta_1)
        ]
        assertExactlyEqual(
            hard(confidence: confidence, predictions: predictions, labels: labels, exits: 3, tau: 0.5), expected)
    }

    /// With a single exit every weight is 1.
    func testHardGatesWithOneExit() {
        let w = hard(confidence: [0.9, 0.1, 0.99], predictions: [1, 0, 2], labels: [1, 1, 2], exits: 1, tau: 0.5)
        assertExactlyEqual(w, [1, 1, 1])
    }

    /// On random batches HardCGT equals the product over earlier exits of (1 - delta_e).
    func testHardGatesMatchProductOfResiduals() {
        let exits = 4
        let tau: Float = 0.6
        for batch in [1, 17, 32] {
            let labels = Fixtures.labels(batch, classes: 3, seed: UInt64(batch))
            let predictions = Fixtures.labels(exits * batch, classes: 3, seed: UInt64(batch + 1))
            let confidence = Fixtures.uniforms(exits * batch, seed: UInt64(batch + 2), 0.3, 1)
            var expected = [Float](repeating: 0, count: exits * batch)
            for e in 0..<exits {
                for i in 0..<batch {
                    var product: Float = 1
                    for earlier in 0..<e {
                        let delta: Float =
                            predictions[earlier * batch + i] == labels[i] && confidence[earlier * batch + i] >= tau
                            ? 1 : 0
                        product *= 1 - delta
                    }
                    expected[e * batch + i] = product
                }
            }
            let w = hard(confidence: confidence, predictions: predictions, labels: labels, exits: exits, tau: tau)
            assertExactlyEqual(w, expected, "batch \(batch)")
            XCTAssertTrue(
                w[batch...].contains(0) && w[batch...].contains(1),
                "batch \(batch): the example should exercise both outcomes")
        }
    }

    /// SoftCGT equals prod_{e' < e} (1 - 1 / (1 + exp(-k (s_e' - tau)))) computed in Double.
    func testSoftGatesMatchDoubleProduct() {
        let exits = 4
        let tau: Float = 0.6
        for batch in [1, 7, 17, 32, 33] {
            for k: Float in [1, 10] {
                let scores = Fixtures.uniforms(exits * batch, seed: UInt64(batch), 0, 1)
                var expected = [Double](repeating: 0, count: exits * batch)
                for e in 0..<exits {
                    for i in 0..<batch {
                        var product = 1.0
                        for earlier in 0..<e {
                            let s = Double(scores[earlier * batch + i])
                            product *= 1 - 1 / (1 + Foundation.exp(-Double(k) * (s - Double(tau))))
                        }
                        expected[e * batch + i] = product
                    }
                }
                let w = soft(scores: scores, exits: exits, batch: batch, tau: tau, k: k)
                assertAllClose(w, expected.floats, relative: 1e-5, absolute: 1e-6, "batch \(batch), k \(k)")
            }
        }
    }

    /// A score exactly at tau halves the weight of every later exit (1 - sigmoid(0) = 1/2).
    func testSoftGateAtThresholdHalvesTheWeight() {
        let batch = 17
        let scores = [Float](repeating: 0.7, count: 3 * batch)
        let w = soft(scores: scores, exits: 3, batch: batch, tau: 0.7, k: 10)
        assertAllClose(
            w,
            [Float](repeating: 1, count: batch) + [Float](repeating: 0.5, count: batch)
                + [Float](repeating: 0.25, count: batch))
    }
}
