import CGTKernels
import CGTTestSupport
import Foundation
import XCTest

final class SoftmaxCrossEntropyTests: XCTestCase {
    struct Forward {
        var probabilities, losses, confidence: [Float]
        var predictions: [Int32]
    }

    private func forward(_ logits: [Float], labels: [Int32], classes: Int, smoothing: Float = 0) -> Forward {
        let rows = labels.count
        var r = Forward(
            probabilities: .init(repeating: .nan, count: rows * classes), losses: .init(repeating: .nan, count: rows),
            confidence: .init(repeating: .nan, count: rows), predictions: .init(repeating: -1, count: rows))
        logits.withUnsafeBufferPointer { z in
            labels.withUnsafeBufferPointer { y in
                r.probabilities.withUnsafeMutableBufferPointer { p in
                    r.losses.withUnsafeMutableBufferPointer { l in
                        r.confidence.withUnsafeMutableBufferPointer { s in
                            r.predictions.withUnsafeMutableBufferPointer {
                                SoftmaxCrossEntropy.forward(
                                    logits: z, labels: y, rows: rows, classes: classes,
                                    probabilities: p, losses: l, confidence: s, predictions: $0, smoothing: smoothing)
                            }
                        }
                    }
                }
            }
        }
        return r
    }

    private func backward(
        _ probabilities: [Float], labels: [Int32], weights: [Float], classes: Int, smoothing: Float = 0
    ) -> [Float] {
        var gradient = [Float](repeating: .nan, count: probabilities.count)
        probabilities.withUnsafeBufferPointer { p in
            labels.withUnsafeBufferPointer { y in
                weights.withUnsafeBufferPointer { w in
                    gradient.withUnsafeMutableBufferPointer {
                        SoftmaxCrossEntropy.backward(
                            probabilities: p, labels: y, weights: w, rows: labels.count, classes: classes,
                            logitGradient: $0,
                            smoothing: smoothing)
                    }
                }
            }
        }
        return gradient
    }

    private func row(_ values: [Float], _ r: Int, _ classes: Int) -> [Float] {
        Array(values[r * classes..<(r + 1) * classes])
    }

    /// Probabilities, loss -log p[label], confidence max p and prediction argmax match a Double softmax.
    func testForwardMatchesDoubleReference() {
        let rows = 6
        for classes in [3, 10, 16, 17, 33] {
            let logits = Fixtures.normals(rows * classes, seed: UInt64(classes), scale: 3)
            let labels = Fixtures.labels(rows, classes: classes, seed: UInt64(classes))
            let r = forward(logits, labels: labels, classes: classes)
            for i in 0..<rows {
                let z = row(logits, i, classes)
                let expected = Reference.softmax(z.doubles)
                let label = "classes \(classes), row \(i)"
                assertAllClose(row(r.probabilities, i, classes), expected.floats, relative: 1e-6, absolute: 1e-9, label)
                XCTAssertEqual(Reference.sum(row(r.probabilities, i, classes)), 1, accuracy: 1e-6, label)
                assertClose(
                    r.losses[i], Float(-Foundation.log(expected[Int(labels[i])])), relative: 1e-6, absolute: 1e-6, label
                )
                assertClose(
                    r.losses[i], Float(Reference.crossEntropy(z.doubles, label: Int(labels[i]))),
                    relative: 1e-6, absolute: 1e-6, label)
                assertClose(r.confidence[i], Float(expected.max()!), relative: 1e-6, absolute: 0, label)
                XCTAssertEqual(r.predictions[i], Int32(Reference.argmax(z)), label)
            }
        }
    }

    /// A hand-checked row: logits (0, ln 2, ln 5) give probabilities (1/8, 2/8, 5/8).
    func testForwardOnAHandComputedRow() {
        let logits: [Float] = [0, Float(Foundation.log(2.0)), Float(Foundation.log(5.0))]
        let r = forward(logits, labels: [1], classes: 3)
        assertAllClose(r.probabilities, [0.125, 0.25, 0.625], relative: 1e-6)
        assertClose(r.losses[0], Float(Foundation.log(4.0)), relative: 1e-6)
        assertClose(r.confidence[0], 0.625, relative: 1e-6)
        XCTAssertEqual(r.predictions[0], 2)
    }

    /// Ties in the logits predict the first class holding the maximum, also when it sits in the tail.
    func testPredictionTiesPickTheFirstClass() {
        let classes = 17
        var logits = [Float](repeating: 0, count: 3 * classes)
        logits[1] = 3
        logits[3] = 3
        logits[16] = 3  // row 0: tie between 1, 3 and 16
        for c in 0..<classes { logits[classes + c] = -1.5 }  // row 1: all equal
        logits[2 * classes + 16] = 2
        logits[2 * classes + 15] = 2  // row 2: tie at the end of the row
        let r = forward(logits, labels: [0, 0, 0], classes: classes)
        XCTAssertEqual(r.predictions, [1, 0, 15])
        assertClose(r.confidence[1], 1 / Float(classes), relative: 1e-6)
        assertClose(r.losses[1], Float(Foundation.log(Double(classes))), relative: 1e-6)
    }

    /// Logits of size 1e4 stay finite: probabilities in [0, 1] that sum to 1 and finite losses.
    func testExtremeLogitsStayFinite() {
        for classes in [3, 17, 33] {
            var logits = [Float](repeating: 0, count: 4 * classes)
            for c in 0..<classes {
                logits[c] = c == 1 ? 1e4 : -1e4  // one huge logit
                logits[classes + c] = c % 2 == 0 ? -1e4 : 1e4  // huge ties
                logits[2 * classes + c] = -1e4 - Float(c)  // all very negative
                logits[3 * classes + c] = Float(c % 3) * 5e3  // mixed
            }
            let labels: [Int32] = [0, 1, Int32(classes - 1), 2]
            let r = forward(logits, labels: labels, classes: classes)
            XCTAssertTrue(r.probabilities.allSatisfy { $0.isFinite && $0 >= 0 && $0 <= 1 }, "classes \(classes)")
            XCTAssertTrue(r.losses.allSatisfy { $0.isFinite && $0 >= 0 }, "classes \(classes): \(r.losses)")
            XCTAssertTrue(r.confidence.allSatisfy { $0.isFinite && $0 > 0 && $0 <= 1 })
            for i in 0..<4 {
                let z = row(logits, i, classes)
                XCTAssertEqual(Reference.sum(row(r.probabilities, i, classes)), 1, accuracy: 1e-6)
                assertAllClose(
                    row(r.probabilities, i, classes), Reference.softmax(z.doubles).floats, relative: 1e-6,
                    absolute: 1e-9)
                XCTAssertEqual(r.predictions[i], Int32(Reference.argmax(z)))
            }
            // Loss 2e4 (the label's logit is 2e4 below the maximum) is still representable exactly.
            assertClose(r.losses[0], 2e4, relative: 1e-6)
        }
    }

    /// The loss keeps full precision when all logits are large: only differences of logits matter.
    func testLossIsAccurateForLargeLogits() {
        for offset: Float in [0, 100, 1e4] {
            let logits: [Float] = [offset, offset, offset - 1]
            let r = forward(logits, labels: [0], classes: 3)
            let expected = Reference.crossEntropy(logits.doubles, label: 0)
            assertClose(r.losses[0], Float(expected), relative: 1e-5, absolute: 1e-6, "offset \(offset)")
        }
    }

    /// backward writes weights[r] * (p[r, c] - [c == label]).
    func testBackwardIsWeightedProbabilitiesMinusOneHot() {
        let rows = 5
        for classes in [3, 10, 16, 17, 33] {
            let probabilities = (0..<rows).flatMap {
                Reference.softmax(Fixtures.normals(classes, seed: UInt64(classes * 10 + $0)).doubles).floats
            }
            let labels = Fixtures.labels(rows, classes: classes, seed: UInt64(classes))
            let weights = Fixtures.uniforms(rows, seed: 3, 0, 0.5)
            var expected = [Double](repeating: 0, count: rows * classes)
            for r in 0..<rows {
                for c in 0..<classes {
                    let onehot: Double = c == Int(labels[r]) ? 1 : 0
                    expected[r * classes + c] = Double(weights[r]) * (Double(probabilities[r * classes + c]) - onehot)
                }
            }
            let gradient = backward(probabilities, labels: labels, weights: weights, classes: classes)
            assertAllClose(gradient, expected.floats, relative: 1e-6, absolute: 1e-8, "classes \(classes)")
        }
    }

    /// -sum_c q[c] log p[c] with q = (1 - eps) onehot + eps / classes, in Double.
    private func smoothedCrossEntropy(_ z: [Double], label: Int, smoothing: Double) -> Double {
        let p = Reference.softmax(z)
        return -p.indices.reduce(0.0) { total, c in
            total + ((c == label ? 1 - smoothing : 0) + smoothing / Double(z.count)) * Foundation.log(p[c])
        }
    }

    /// forward then backward is the gradient of sum_r w_r CE_r, with and without label
    /// smoothing: central differences of the Double loss agree, and so does the forward loss.
    func testBackwardMatchesFiniteDifferencesOfTheWeightedLoss() {
        let rows = 3
        for (classes, smoothing) in [(17, Float(0)), (17, 0.1), (5, 0.3), (33, 0.05)] {
            let logits = Fixtures.normals(rows * classes, seed: 90, scale: 2)
            let labels = Fixtures.labels(rows, classes: classes, seed: 91)
            let weights = Fixtures.uniforms(rows, seed: 92, 0.1, 1)
            let row = { (z: [Double], r: Int) in Array(z[r * classes..<(r + 1) * classes]) }
            func loss(_ z: [Double]) -> Double {
                (0..<rows).reduce(0.0) {
                    $0 + Double(weights[$1])
                        * smoothedCrossEntropy(row(z, $1), label: Int(labels[$1]), smoothing: Double(smoothing))
                }
            }
            let h = 1e-6
            let zd = logits.doubles
            let numeric = zd.indices.map { i -> Double in
                var plus = zd
                var minus = zd
                plus[i] += h
                minus[i] -= h
                return (loss(plus) - loss(minus)) / (2 * h)
            }
            let r = forward(logits, labels: labels, classes: classes, smoothing: smoothing)
            for i in 0..<rows {
                assertClose(
                    r.losses[i],
                    Float(smoothedCrossEntropy(row(zd, i), label: Int(labels[i]), smoothing: Double(smoothing))),
                    relative: 1e-5, absolute: 1e-6, "classes \(classes), eps \(smoothing), row \(i)")
            }
            let gradient = backward(
                r.probabilities, labels: labels, weights: weights, classes: classes, smoothing: smoothing)
            XCTAssertLessThan(
                maxRelativeError(gradient.doubles, numeric, floor: 1e-3), 1e-3, "classes \(classes), eps \(smoothing)")
        }
    }
}
