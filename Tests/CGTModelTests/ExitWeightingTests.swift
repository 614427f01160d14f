import CGTKernels
import CGTTestSupport
import Foundation
import XCTest

@testable import CGTModel

/// HardCGT, SoftCGT and fixed weights against values worked out by hand or from Eq. 3-7 in Double.
final class ExitWeightingTests: XCTestCase {
    /// Runs `weighting` on exit-major per-exit outputs and returns the weights, exit-major.
    private func weights(
        _ weighting: ExitWeighting, confidence: [Float], predictions: [Int32], trueClass: [Float]? = nil,
        labels: [Int32], exits: Int
    ) -> [Float] {
        let batch = labels.count
        precondition(confidence.count == exits * batch && predictions.count == exits * batch)
        let trueClass = trueClass ?? confidence
        var result = [Float](repeating: .nan, count: exits * batch)
        confidence.withUnsafeBufferPointer { c in
            predictions.withUnsafeBufferPointer { p in
                trueClass.withUnsafeBufferPointer { t in
                    labels.withUnsafeBufferPointer { y in
                        result.withUnsafeMutableBufferPointer { w in
                            let outputs = ExitPredictions(
                                confidence: c, predictions: p, trueClassProbability: t, labels: y, exits: exits,
                                batch: batch)
                            weighting.weights(for: outputs, into: w)
                        }
                    }
                }
            }
        }
        return result
    }

    func testHardCGTTable() {
        // Three exits, seven samples, tau = 0.8. Rows are exits, columns samples (exit-major).
        let labels: [Int32] = [2, 0, 1, 3, 1, 2, 0]
        let predictions: [Int32] = [
            2, 1, 1, 3, 0, 2, 0,  // exit 0
            2, 0, 1, 3, 1, 1, 0,  // exit 1
            2, 0, 1, 3, 2, 2, 1,  // exit 2 (its own result never gates anything)
        ]
        let confidence: [Float] = [
            0.90, 0.95, 0.50, 0.80, 0.30, 0.99, 0.79,
            0.99, 0.85, 0.70, 0.99, 0.81, 0.99, 0.99,
            0.99, 0.99, 0.99, 0.99, 0.99, 0.99, 0.99,
        ]
        let expected: [Float] = [
            // Exit 0: lambda_1 = 1 for every sample (Eq. 5).
            1, 1, 1, 1, 1, 1, 1,
            // Exit 1: 1 - delta_0.
            //  s0: exit 0 right (2 = 2) and 0.90 >= 0.8: delta_0 = 1 -> 0.
            //  s1: exit 0 wrong (1 != 0) although 0.95 is confident: delta_0 = 0 -> 1.
            //  s2: exit 0 right but 0.50 < 0.8 -> 1.
            //  s3: exit 0 right with confidence exactly tau (>= is inclusive) -> 0.
            //  s4: exit 0 wrong and unconfident -> 1.
            //  s5: exit 0 right, 0.99 -> 0.
            //  s6: exit 0 right, 0.79 just below tau -> 1.
            0, 1, 1, 0, 1, 0, 1,
            // Exit 2: (1 - delta_0)(1 - delta_1).
            //  s0: already 0 (exit 0 succeeded), whatever exit 1 did -> 0.
            //  s1: exit 1 right (0 = 0) and 0.85 >= 0.8 -> 0.
            //  s2: exit 1 right but 0.70 < 0.8 -> 1.
            //  s3: exit 0 succeeded -> 0.
            //  s4: exit 1 right (1 = 1) and 0.81 -> 0.
            //  s5: exit 0 succeeded, even though exit 1 is wrong -> 0.
            //  s6: exit 1 right with 0.99 -> 0.
            0, 0, 1, 0, 0, 0, 0,
        ]
        XCTAssertEqual(
            weights(HardCGT(tau: 0.8), confidence: confidence, predictions: predictions, labels: labels, exits: 3),
            expected)
    }

    func testHardCGTGatesOverAWideBatch() {
        // 21 samples (a 16-lane vector and a tail in the soft path; the hard path is scalar):
        // with every exit right and confident, only exit 0 learns.
        let batch = 21
        let labels = Fixtures.labels(batch, classes: 5, seed: 1)
        let predictions = labels + labels + labels
        let confident = [Float](repeating: 0.95, count: 3 * batch)
        let expected = [Float](repeating: 1, count: batch) + [Float](repeating: 0, count: 2 * batch)
        XCTAssertEqual(
            weights(HardCGT(tau: 0.9), confidence: confident, predictions: predictions, labels: labels, exits: 3),
            expected)
        // With no exit confident, every exit learns from every sample.
        let unsure = [Float](repeating: 0.5, count: 3 * batch)
        XCTAssertEqual(
            weights(HardCGT(tau: 0.9), confidence: unsure, predictions: predictions, labels: labels, exits: 3),
            [Float](repeating: 1, count: 3 * batch))
        // A single exit always gets weight 1.
        XCTAssertEqual(
            weights(
                HardCGT(tau: 0.1), confidence: Array(confident[0..<batch]), predictions: labels, labels: labels,
                exits: 1),
            [Float](repeating: 1, count: batch))
    }

    /// lambda of Eq. 6-7 in Double, exit-major, from exit-major scores s_e(i).
    private func softGates(scores: [Float], exits: Int, batch: Int, tau: Double, sharpness k: Double) -> [Double] {
        var lambda = [Double](repeating: 1, count: exits * batch)
        for e in 1..<exits {
            for i in 0..<batch {
                let s = Double(scores[(e - 1) * batch + i])
                let r = 1 - 1 / (1 + Foundation.exp(-k * (s - tau)))
                lambda[e * batch + i] = lambda[(e - 1) * batch + i] * r
            }
        }
        return lambda
    }

    func testSoftCGTMatchesEquations6And7() {
        // 18 samples: one full vector and a 2-sample tail; four exits so products have three factors.
        let batch = 18
        let exits = 4
        let confidence = Fixtures.uniforms(exits * batch, seed: 2, 0.25, 1)
        let predictions = Fixtures.labels(exits * batch, classes: 4, seed: 3)
        let labels = Fixtures.labels(batch, classes: 4, seed: 4)
        for (tau, k) in [(0.9, 1.0), (0.5, 1.0), (0.7, 8.0), (0.9, 40.0)] {
            let actual = weights(
                SoftCGT(tau: Float(tau), sharpness: Float(k)), confidence: confidence, predictions: predictions,
                labels: labels, exits: exits)
            let expected = softGates(scores: confidence, exits: exits, batch: batch, tau: tau, sharpness: k)
            assertAllClose(actual, expected.map(Float.init), relative: 1e-5, absolute: 1e-7, "tau \(tau), k \(k)")
        }
    }

    func testSoftCGTHandValues() {
        // k = 1, tau = 0.9, two samples, three exits.
        //   s_0 = (0.9, 0.4): r_0 = 1 - sigmoid(0) = 0.5 and 1 - sigmoid(-0.5) = 0.622459...
        //   s_1 = (1.0, 0.9): r_1 = 1 - sigmoid(0.1) = 0.475021... and 0.5
        // lambda_1 = 1; lambda_2 = r_0; lambda_3 = r_0 r_1.
        let sigmoid = { (x: Double) in 1 / (1 + Foundation.exp(-x)) }
        let r0 = [0.5, 1 - sigmoid(-0.5)]
        let r1 = [1 - sigmoid(0.1), 0.5]
        XCTAssertEqual(r0[1], 0.6224593312018546, accuracy: 1e-15)
        XCTAssertEqual(r1[0], 0.47502081252106, accuracy: 1e-14)
        let expected = [1, 1, r0[0], r0[1], r0[0] * r1[0], r0[1] * r1[1]]
        let actual = weights(
            SoftCGT(tau: 0.9), confidence: [0.9, 0.4, 1.0, 0.9, 0.5, 0.5], predictions: [0, 0, 0, 0, 0, 0],
            labels: [0, 1], exits: 3)
        assertAllClose(actual, expected.map(Float.init), relative: 1e-6, absolute: 1e-7)
        // SoftCGT ignores correctness: the same scores with other predictions give the same gates.
        XCTAssertEqual(
            weights(
                SoftCGT(tau: 0.9), confidence: [0.9, 0.4, 1.0, 0.9, 0.5, 0.5], predictions: [1, 0, 3, 1, 2, 2],
                labels: [0, 1], exits: 3), actual)
    }

    func testSoftCGTTrueClassScoreReadsTrueClassProbability() {
        let batch = 18
        let exits = 3
        let confidence = Fixtures.uniforms(exits * batch, seed: 5, 0.5, 1)
        // The true class gets less than the maximum: a different score, so different gates.
        let trueClass = confidence.enumerated().map { $1 * Float(0.2 + 0.8 * Double($0 % 5) / 5) }
        let predictions = Fixtures.labels(exits * batch, classes: 3, seed: 6)
        let labels = Fixtures.labels(batch, classes: 3, seed: 7)
        let soft = SoftCGT(tau: 0.6, sharpness: 5, score: .trueClassProbability)
        let actual = weights(
            soft, confidence: confidence, predictions: predictions, trueClass: trueClass, labels: labels, exits: exits)
        assertAllClose(
            actual, softGates(scores: trueClass, exits: exits, batch: batch, tau: 0.6, sharpness: 5).map(Float.init),
            relative: 1e-5, absolute: 1e-7)
        let byMaximum = weights(
            SoftCGT(tau: 0.6, sharpness: 5), confidence: confidence, predictions: predictions, trueClass: trueClass,
            labels: labels, exits: exits)
        assertAllClose(
            byMaximum,
            softGates(scores: confidence, exits: exits, batch: batch, tau: 0.6, sharpness: 5).map(Float.init),
            relative: 1e-5, absolute: 1e-7)
        XCTAssertNotEqual(actual, byMaximum)
    }

    func testSoftCGTWithLargeSharpnessApproachesHardGates() {
        // k = 200: r is within 1e-8 of 0 or 1 when |s - tau| >= 0.1.
        let confidence: [Float] = [0.95, 0.5, 0.99, 0.6, 0.7, 0.7]
        let actual = weights(
            SoftCGT(tau: 0.8, sharpness: 200), confidence: confidence, predictions: [0, 0, 0, 0, 0, 0], labels: [0, 0],
            exits: 3)
        // Sample 0 (0.95 at exit 0) is stopped at once; sample 1 (0.5, then 0.6) flows through.
        assertAllClose(actual, [1, 1, 0, 1, 0, 1], relative: 0, absolute: 1e-6)
    }

    func testFixedExitWeights() {
        let batch = 5
        let actual = weights(
            FixedExitWeights([0.6, 0.3, 0.1]), confidence: [Float](repeating: 0.5, count: 3 * batch),
            predictions: [Int32](repeating: 0, count: 3 * batch), labels: [Int32](repeating: 0, count: batch), exits: 3)
        XCTAssertEqual(
            actual,
            [Float](repeating: 0.6, count: batch) + [Float](repeating: 0.3, count: batch)
                + [Float](repeating: 0.1, count: batch))
    }

    func testNames() {
        XCTAssertEqual(HardCGT(tau: 0.9).name, "hardcgt")
        XCTAssertEqual(SoftCGT(tau: 0.9).name, "softcgt")
        XCTAssertEqual(FixedExitWeights([1]).name, "fixed")
        XCTAssertEqual(SoftCGT(tau: 0.9).sharpness, 1, "k = 1 is the paper's gate")
        XCTAssertEqual(SoftCGT(tau: 0.9).score, .maxProbability)
        XCTAssertEqual(SoftCGT.Score.trueClassProbability.rawValue, "true_class_probability")
    }

    func testPredictReportsSoftmaxConfidencePredictionAndTrueClass() {
        // ExitObjective.predict on real logits against a Double softmax.
        let batch = 19
        let network = MLPArchitecture(
            inputFeatures: 6, hiddenWidths: [8, 8, 8], exitsAfter: [1, 2, 3], classes: 4, dropout: 0
        ).build()
        network.initialize(seed: 9)
        network.reserve(maxBatch: batch)
        let objective = ExitObjective(exits: 3, classes: 4)
        objective.reserve(maxBatch: batch)
        let x = Fixtures.normals(batch * 6, seed: 10, scale: 2)
        let labels = Fixtures.labels(batch, classes: 4, seed: 11)
        x.withUnsafeBufferPointer { network.forward($0, batch: batch, context: ForwardContext(mode: .training)) }
        labels.withUnsafeBufferPointer { y in
            let outputs = objective.predict(network: network, labels: y, batch: batch)
            XCTAssertEqual(outputs.exits, 3)
            XCTAssertEqual(outputs.batch, batch)
            for e in 0..<3 {
                let p = referenceSoftmax(Array(network.logits(exit: e, batch: batch)), classes: 4)
                assertAllClose(
                    Array(objective.probabilities(exit: e, batch: batch)), p.flatMap { $0 }.map(Float.init),
                    relative: 1e-5, absolute: 1e-7)
                for i in 0..<batch {
                    let k = e * batch + i
                    assertClose(outputs.confidence[k], Float(p[i].max()!), relative: 1e-5)
                    XCTAssertEqual(Int(outputs.predictions[k]), argmax(p[i]))
                    assertClose(outputs.trueClassProbability[k], Float(p[i][Int(labels[i])]), relative: 1e-5)
                }
            }
        }
    }
}
