import CGTKernels
import CGTTestSupport
import Foundation
import XCTest

@testable import CGTModel

/// `SGD` and `Adam` against `torch.optim`'s update rules evaluated in Double.
final class OptimizerTests: XCTestCase {
    /// A store of 37 parameters in two tensors (20 + 17: vectors and a scalar tail) with random values.
    private func makeStore(seed: UInt64) -> ParameterStore {
        var layout = ParameterLayoutBuilder()
        _ = layout.parameter("a.weight", shape: [4, 5])
        _ = layout.parameter("b.bias", shape: [17])
        let store = ParameterStore(layout: layout)
        _ = store.parameters.update(from: Fixtures.normals(37, seed: seed))
        return store
    }

    /// torch.optim.Adam / AdamW, in Double.
    ///
    /// The hyperparameters are the Float values the optimizer holds (0.999 as a Float is
    /// 0.99900001287): with the decimal value, 1 - beta2 alone would differ by 1.3e-5.
    private struct ReferenceAdam {
        var lr, beta1, beta2, eps, wd: Double
        var decoupled: Bool
        var m: [Double], v: [Double], t = 0

        init(
            lr: Float, beta1: Float, beta2: Float, eps: Float, wd: Float, decoupled: Bool, m: [Double], v: [Double],
            t: Int = 0
        ) {
            (self.lr, self.beta1, self.beta2, self.eps, self.wd) = (
                Double(lr), Double(beta1), Double(beta2), Double(eps), Double(wd)
            )
            self.decoupled = decoupled
            (self.m, self.v, self.t) = (m, v, t)
        }

        mutating func step(_ p: inout [Double], _ grad: [Float]) {
            t += 1
            let bc1 = 1 - Foundation.pow(beta1, Double(t))
            let bc2 = 1 - Foundation.pow(beta2, Double(t))
            for i in p.indices {
                var g = Double(grad[i])
                if decoupled { p[i] *= 1 - lr * wd } else { g += wd * p[i] }
                m[i] = beta1 * m[i] + (1 - beta1) * g
                v[i] = beta2 * v[i] + (1 - beta2) * g * g
                let denominator = v[i].squareRoot() / bc2.squareRoot() + eps
                p[i] -= lr / bc1 * m[i] / denominator
            }
        }
    }

    func testOneAdamStepMatchesPyTorch() {
        let store = makeStore(seed: 1)
        let gradients = Fixtures.normals(37, seed: 2, scale: 0.1)
        _ = store.gradients.update(from: gradients)
        let before = Array(store.parameters)
        let adam = Adam(parameterCount: 37)
        XCTAssertEqual(adam.stepCount, 0)
        adam.step(store, learningRate: 0.1)
        XCTAssertEqual(adam.stepCount, 1)
        // At t = 1, m_hat = g and v_hat = g^2: the step is lr * g / (|g| + eps), lr times the sign of g.
        for i in 0..<37 {
            let expected = Double(before[i]) - 0.1 * Double(gradients[i]) / (abs(Double(gradients[i])) + 1e-8)
            assertClose(store.parameters[i], Float(expected), relative: 1e-6, absolute: 1e-6, "parameter \(i)")
        }
        var reference = ReferenceAdam(
            lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, wd: 0, decoupled: false,
            m: Array(repeating: 0, count: 37), v: Array(repeating: 0, count: 37))
        var p = before.map(Double.init)
        reference.step(&p, gradients)
        assertAllClose(Array(store.parameters), p.map(Float.init), relative: 1e-6, absolute: 1e-6)
        XCTAssertEqual(adam.stateBuffers.map(\.name), ["exp_avg", "exp_avg_sq"])
        assertAllClose(Array(adam.stateBuffers[0].values), reference.m.map(Float.init), relative: 1e-6, absolute: 1e-9)
        assertAllClose(Array(adam.stateBuffers[1].values), reference.v.map(Float.init), relative: 1e-5, absolute: 1e-12)
    }

    func testAdamStepsWithWeightDecayMatchPyTorch() {
        for decoupled in [false, true] {
            let store = makeStore(seed: 3)
            let adam = Adam(
                parameterCount: 37, beta1: 0.8, beta2: 0.99, epsilon: 1e-6, weightDecay: 0.05, decoupled: decoupled)
            var reference = ReferenceAdam(
                lr: 0.01, beta1: 0.8, beta2: 0.99, eps: 1e-6, wd: 0.05, decoupled: decoupled,
                m: Array(repeating: 0, count: 37), v: Array(repeating: 0, count: 37))
            var p = Array(store.parameters).map(Double.init)
            for t in 1...5 {
                let gradients = Fixtures.normals(37, seed: 10 + UInt64(t))
                _ = store.gradients.update(from: gradients)
                adam.step(store, learningRate: 0.01)
                reference.step(&p, gradients)
                XCTAssertEqual(adam.stepCount, t)
                assertAllClose(
                    Array(store.parameters), p.map(Float.init), relative: 1e-5, absolute: 1e-6,
                    "decoupled \(decoupled), step \(t)")
            }
            assertAllClose(
                Array(adam.stateBuffers[0].values), reference.m.map(Float.init), relative: 1e-5, absolute: 1e-6)
            assertAllClose(
                Array(adam.stateBuffers[1].values), reference.v.map(Float.init), relative: 1e-5, absolute: 1e-6)
        }
    }

    func testAdamAndAdamWDiffer() {
        // With weight decay, coupling it into the gradient (Adam) and decaying the weights (AdamW) give different steps.
        let a = makeStore(seed: 4)
        let b = makeStore(seed: 4)
        let gradients = Fixtures.normals(37, seed: 5)
        _ = a.gradients.update(from: gradients)
        _ = b.gradients.update(from: gradients)
        Adam(parameterCount: 37, weightDecay: 0.1).step(a, learningRate: 0.01)
        Adam(parameterCount: 37, weightDecay: 0.1, decoupled: true).step(b, learningRate: 0.01)
        XCTAssertNotEqual(Array(a.parameters), Array(b.parameters))
    }

    func testSGDStepsMatchPyTorch() {
        for nesterov in [false, true] {
            let store = makeStore(seed: 6)
            let sgd = SGD(parameterCount: 37, momentum: 0.9, weightDecay: 1e-2, nesterov: nesterov)
            XCTAssertEqual(sgd.stateBuffers.map(\.name), ["momentum_buffer"])
            var p = Array(store.parameters).map(Double.init)
            var buffer = [Double](repeating: 0, count: 37)
            for t in 1...4 {
                let gradients = Fixtures.normals(37, seed: 20 + UInt64(t))
                _ = store.gradients.update(from: gradients)
                sgd.step(store, learningRate: 0.05)
                XCTAssertEqual(sgd.stepCount, t)
                // torch.optim.SGD: g = grad + wd p; buf = mu buf + g (buf = g at t = 1);
                // p -= lr (nesterov ? g + mu buf : buf).
                for i in p.indices {
                    let g = Double(gradients[i]) + 1e-2 * p[i]
                    buffer[i] = t == 1 ? g : 0.9 * buffer[i] + g
                    p[i] -= 0.05 * (nesterov ? g + 0.9 * buffer[i] : buffer[i])
                }
                assertAllClose(
                    Array(store.parameters), p.map(Float.init), relative: 1e-5, absolute: 1e-6,
                    "nesterov \(nesterov), step \(t)")
            }
            assertAllClose(Array(sgd.stateBuffers[0].values), buffer.map(Float.init), relative: 1e-5, absolute: 1e-6)
        }
    }

    func testPlainSGDIsGradientDescent() {
        let store = makeStore(seed: 7)
        let before = Array(store.parameters)
        let gradients = Fixtures.normals(37, seed: 8)
        _ = store.gradients.update(from: gradients)
        let sgd = SGD(parameterCount: 37, momentum: 0, weightDecay: 0)
        sgd.step(store, learningRate: 0.5)
        assertAllClose(
            Array(store.parameters), zip(before, gradients).map { $0 - 0.5 * $1 }, relative: 1e-6, absolute: 1e-7)
        // The gradients are read, not consumed.
        XCTAssertEqual(Array(store.gradients), gradients)
    }

    func testStateBuffersHaveTheParameterLayout() {
        let adam = Adam(parameterCount: 37)
        let sgd = SGD(parameterCount: 37, momentum: 0.9, weightDecay: 0)
        for (name, values) in adam.stateBuffers + sgd.stateBuffers {
            XCTAssertEqual(values.count, 37, name)
            XCTAssertTrue(values.allSatisfy { $0 == 0 }, "\(name) starts at zero")
        }
        // stepCount is settable, for restoring a checkpoint; Adam's bias correction then uses it.
        let store = makeStore(seed: 9)
        let gradients = Fixtures.normals(37, seed: 10)
        _ = store.gradients.update(from: gradients)
        let before = Array(store.parameters)
        adam.stepCount = 99
        adam.step(store, learningRate: 0.01)
        XCTAssertEqual(adam.stepCount, 100)
        var reference = ReferenceAdam(
            lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, wd: 0, decoupled: false,
            m: Array(repeating: 0, count: 37), v: Array(repeating: 0, count: 37), t: 99)
        var p = before.map(Double.init)
        reference.step(&p, gradients)
        assertAllClose(Array(store.parameters), p.map(Float.init), relative: 1e-5, absolute: 1e-6)
    }
}
