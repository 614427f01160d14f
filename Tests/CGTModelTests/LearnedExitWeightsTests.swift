import CGTKernels
import CGTTestSupport
import Foundation
import XCTest

@testable import CGTModel

/// L2W's weight prediction network: its weights from the exits' losses, and the gradient of a
/// meta objective linear in the weights against finite differences.
final class LearnedExitWeightsTests: XCTestCase {
    private let exits = 3
    private let batch = 6

    /// Runs `body` with predictions whose true-class probabilities are `p` (exit-major).
    private func withPredictions<R>(_ p: [Float], _ body: (ExitPredictions) -> R) -> R {
        let count = exits * batch
        let confidence = [Float](repeating: 0.5, count: count)
        let predictions = [Int32](repeating: 0, count: count)
        let labels = [Int32](repeating: 0, count: batch)
        return confidence.withUnsafeBufferPointer { c in
            predictions.withUnsafeBufferPointer { d in
                p.withUnsafeBufferPointer { t in
                    labels.withUnsafeBufferPointer { y in
                        body(
                            ExitPredictions(
                                confidence: c, predictions: d, trueClassProbability: t, labels: y, exits: exits,
                                batch: batch))
                    }
                }
            }
        }
    }

    private func weights(_ network: LearnedExitWeights, _ p: [Float]) -> [Float] {
        var w = [Float](repeating: 0, count: exits * batch)
        withPredictions(p) { outputs in w.withUnsafeMutableBufferPointer { network.weights(for: outputs, into: $0) } }
        return w
    }

    func testWeightsAreTheSigmoidOfTheNetworkOnTheLosses() {
        let network = LearnedExitWeights(exits: exits, hiddenWidth: 5, seed: 4)
        let p = Fixtures.uniforms(exits * batch, seed: 5, 0.05, 0.95)
        let w = weights(network, p)
        // The network by hand: sigmoid(W2 relu(W1 l + b1) + b2), l_e = -log p_e.
        func slot(_ name: String) -> [Double] {
            Array(network.store.parameter(network.store.parameterSlots.first { $0.name == name }!)).map(Double.init)
        }
        let (w1, b1, w2, b2) = (
            slot("l2w.0.linear.weight"), slot("l2w.0.linear.bias"), slot("l2w.1.linear.weight"),
            slot("l2w.1.linear.bias")
        )
        for i in 0..<batch {
            let l = (0..<exits).map { -Foundation.log(Double(p[$0 * batch + i])) }
            let h = (0..<5).map { j in max(0, b1[j] + (0..<exits).reduce(0) { $0 + w1[j * exits + $1] * l[$1] }) }
            for e in 0..<exits {
                let o = b2[e] + (0..<5).reduce(0) { $0 + w2[e * 5 + $1] * h[$1] }
                XCTAssertEqual(
                    Double(w[e * batch + i]), 1 / (1 + Foundation.exp(-o)), accuracy: 1e-5, "sample \(i) exit \(e)")
            }
        }
    }

    func testMetaGradientMatchesFiniteDifferences() {
        let p = Fixtures.uniforms(exits * batch, seed: 6, 0.05, 0.95)
        let c = Fixtures.normals(exits * batch, seed: 7)
        for spread: Float? in [nil, 0.8] {
            let network = LearnedExitWeights(exits: exits, hiddenWidth: 7, seed: 8)
            // sum c lambda, lambda centred by the spread as ExitObjective.WeightAdjustment centres it.
            func objective() -> Double {
                var w = weights(network, p)
                if let spread {
                    w.withUnsafeMutableBufferPointer {
                        ExitObjective.WeightAdjustment(spread: spread).apply(to: $0, exits: exits, batch: batch)
                    }
                }
                return zip(w, c).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            }
            _ = weights(network, p)
            c.withUnsafeBufferPointer { network.accumulateMetaGradient(coefficients: $0, spread: spread) }
            let analytic = Array(network.store.gradients)
            let numeric = FiniteDifference.gradient(of: network.store.parameters, step: 5e-3) { objective() }
            assertGradientMatches(analytic, numeric, tolerance: 2e-2, "l2w meta gradient, spread \(String(describing: spread))")
        }
    }
}
