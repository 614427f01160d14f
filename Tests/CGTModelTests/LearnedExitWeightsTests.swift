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
            assertGradientMatches(
                analytic, numeric, tolerance: 2e-2, "l2w meta gradient, spread \(String(describing: spread))")
        }
    }
}

/// The meta step's finite difference: (l(theta + eps v) - l(theta - eps v)) / (2 eps) with
/// eps = 0.01 / |v| against <v, grad l_e(i)> from a backward pass per sample and exit, on the
/// gradient checks' network (BatchNorm with batch statistics, dropout).
final class MetaStepDifferenceTests: XCTestCase {
    func testTheFiniteDifferenceIsTheDirectionalDerivative() {
        let fixture = GradientFixture(dropout: 0.2)
        fixture.input = Fixtures.normals(fixture.batch * 6, seed: 91)
        fixture.labels = Fixtures.labels(fixture.batch, classes: 4, seed: 92)
        let store = fixture.network.store
        let (b, exits) = (fixture.batch, fixture.network.exitCount)
        let v = Fixtures.normals(store.parameterCount, seed: 93)
        let theta = Array(store.parameters)
        func losses(at direction: Float, eps: Float) -> [Float] {
            for k in theta.indices { store.parameters[k] = theta[k] + direction * eps * v[k] }
            fixture.forward(fixture.input)
            let p = fixture.labels.withUnsafeBufferPointer {
                Array(fixture.objective.predict(network: fixture.network, labels: $0, batch: b).trueClassProbability)
            }
            return p.map { -Foundation.log($0) }
        }
        let norm = v.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        let eps = Float(0.01 / norm)
        let up = losses(at: 1, eps: eps)
        let down = losses(at: -1, eps: eps)
        _ = store.parameters.update(from: theta)
        var numeric: [Double] = []
        var analytic: [Float] = []
        for e in 0..<exits {
            for i in 0..<b {
                numeric.append(Double(up[e * b + i] - down[e * b + i]) / (2 * Double(eps)))
                var oneHot = [Float](repeating: 0, count: exits * b)
                oneHot[e * b + i] = 1
                let (_, gradient) = fixture.analyticGradient(
                    weighting: ExitWeightTable(oneHot), globalBatch: 1)
                analytic.append(zip(gradient, v).reduce(0) { $0 + $1.0 * $1.1 })
            }
        }
        assertGradientMatches(analytic, numeric, tolerance: 2e-2, "<v, grad l_e(i)> by finite difference")
    }
}
