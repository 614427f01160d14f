import CGTKernels
import CGTTestSupport
import Foundation
import XCTest

final class OptimizerKernelTests: XCTestCase {
    /// torch.optim.SGD's update for one parameter tensor, in Double, with dampening 0:
    /// d_p = grad + wd p; buf = d_p on the first step, else mu buf + d_p;
    /// d_p = d_p + mu buf if nesterov else buf (when mu != 0); p -= lr d_p.
    private struct TorchSGD {
        var lr, momentum, weightDecay: Double
        var nesterov: Bool
        var buffer: [Double]? = nil

        mutating func step(_ p: inout [Double], _ grad: [Double]) {
            var dp = (0..<p.count).map { grad[$0] + weightDecay * p[$0] }
            if momentum != 0 {
                if var buf = buffer {
                    for i in buf.indices { buf[i] = momentum * buf[i] + dp[i] }
                    buffer = buf
                } else {
                    buffer = dp
                }
                if nesterov {
                    for i in dp.indices { dp[i] += momentum * buffer![i] }
                } else {
                    dp = buffer!
                }
            }
            for i in p.indices { p[i] -= lr * dp[i] }
        }
    }

    /// torch.optim.Adam / AdamW for one parameter tensor, in Double (amsgrad off, maximize off).
    private struct TorchAdam {
        var lr, beta1, beta2, eps, weightDecay: Double
        var decoupled: Bool
        var expAvg: [Double]
        var expAvgSq: [Double]
        var step = 0

        init(count: Int, lr: Double, beta1: Double, beta2: Double, eps: Double, weightDecay: Double, decoupled: Bool) {
            (self.lr, self.beta1, self.beta2, self.eps, self.weightDecay, self.decoupled) = (
                lr, beta1, beta2, eps, weightDecay, decoupled
            )
            expAvg = .init(repeating: 0, count: count)
            expAvgSq = .init(repeating: 0, count: count)
        }

        mutating func update(_ p: inout [Double], _ grad: [Double]) {
            step += 1
            var g = grad
            if decoupled {
                for i in p.indices { p[i] *= 1 - lr * weightDecay }
            } else {
                for i in p.indices { g[i] += weightDecay * p[i] }
            }
            let biasCorrection1 = 1 - Foundation.pow(beta1, Double(step))
            let biasCorrection2 = 1 - Foundation.pow(beta2, Double(step))
            let stepSize = lr / biasCorrection1
            for i in p.indices {
                expAvg[i] = beta1 * expAvg[i] + (1 - beta1) * g[i]
                expAvgSq[i] = beta2 * expAvgSq[i] + (1 - beta2) * g[i] * g[i]
                let denom = expAvgSq[i].squareRoot() / biasCorrection2.squareRoot() + eps
                p[i] -= stepSize * expAvg[i] / denom
            }
        }
    }

    /// Five SGD steps with momentum, weight decay and either form of momentum follow torch.optim.SGD.
    func testSGDMatchesTorchFormulaOverSeveralSteps() {
        let settings: [(lr: Float, mu: Float, wd: Float, nesterov: Bool)] = [
            (0.1, 0.9, 0.01, false), (0.1, 0.9, 0.01, true), (0.05, 0, 0, false), (0.05, 0, 0.1, false),
            (0.2, 0.5, 0, true),
        ]
        for n in kernelSizes {
            for (k, s) in settings.enumerated() {
                var parameters = Fixtures.normals(n, seed: UInt64(n))
                var velocity = [Float](repeating: 0, count: n)
                var reference = TorchSGD(
                    lr: Double(s.lr), momentum: Double(s.mu), weightDecay: Double(s.wd), nesterov: s.nesterov)
                var expected = parameters.doubles
                for step in 0..<5 {
                    let gradients = Fixtures.normals(n, seed: UInt64(1000 * k + 10 * n + step))
                    parameters.withUnsafeMutableBufferPointer { p in
                        gradients.withUnsafeBufferPointer { g in
                            velocity.withUnsafeMutableBufferPointer { v in
                                OptimizerKernels.sgdStep(
                                    parameters: p, gradients: g, velocity: v, learningRate: s.lr, momentum: s.mu,
                                    weightDecay: s.wd, nesterov: s.nesterov)
                            }
                        }
                    }
                    reference.step(&expected, gradients.doubles)
                    assertAllClose(
                        parameters, expected.floats, relative: 1e-5, absolute: 1e-6,
                        "n \(n), setting \(s), step \(step)")
                    if let buffer = reference.buffer {
                        assertAllClose(
                            velocity, buffer.floats, relative: 1e-5, absolute: 1e-6, "velocity, n \(n), setting \(s)")
                    }
                }
            }
        }
    }

    /// A hand-computed SGD step: p = 1, grad = 0.5, wd = 0.1, mu = 0.9, lr = 0.1, from zero velocity.
    func testSGDOnAHandComputedStep() {
        for nesterov in [false, true] {
            var p: [Float] = [1]
            var v: [Float] = [0]
            let g: [Float] = [0.5]
            p.withUnsafeMutableBufferPointer { pp in
                g.withUnsafeBufferPointer { gp in
                    v.withUnsafeMutableBufferPointer {
                        OptimizerKernels.sgdStep(
                            parameters: pp, gradients: gp, velocity: $0, learningRate: 0.1,
                            momentum: 0.9, weightDecay: 0.1, nesterov: nesterov)
                    }
                }
            }
            // d_p = 0.6, buf = 0.6; plain: p = 1 - 0.06; nesterov: p = 1 - 0.1 * (0.6 + 0.54).
            assertClose(v[0], 0.6)
            assertClose(p[0], nesterov ? 0.886 : 0.94)
        }
    }

    /// Three Adam and AdamW steps follow torch.optim.Adam / AdamW, moments included.
    func testAdamAndAdamWMatchTorchFormula() {
        for n in kernelSizes {
            for decoupled in [false, true] {
                let lr: Float = 0.01
                let beta1: Float = 0.9
                let beta2: Float = 0.999
                let eps: Float = 1e-8
                let wd: Float = 0.1
                var parameters = Fixtures.normals(n, seed: UInt64(n))
                var m = [Float](repeating: 0, count: n)
                var v = [Float](repeating: 0, count: n)
                var reference = TorchAdam(
                    count: n, lr: Double(lr), beta1: Double(beta1), beta2: Double(beta2), eps: Double(eps),
                    weightDecay: Double(wd), decoupled: decoupled)
                var expected = parameters.doubles
                for step in 1...3 {
                    let gradients = Fixtures.normals(n, seed: UInt64(100 * n + step), scale: 0.1)
                    parameters.withUnsafeMutableBufferPointer { p in
                        gradients.withUnsafeBufferPointer { g in
                            m.withUnsafeMutableBufferPointer { mp in
                                v.withUnsafeMutableBufferPointer { vp in
                                    OptimizerKernels.adamStep(
                                        parameters: p, gradients: g, firstMoment: mp, secondMoment: vp,
                                        learningRate: lr,
                                        beta1: beta1, beta2: beta2, epsilon: eps, weightDecay: wd,
                                        decoupledWeightDecay: decoupled, step: step)
                                }
                            }
                        }
                    }
                    reference.update(&expected, gradients.doubles)
                    let label = "n \(n), \(decoupled ? "AdamW" : "Adam"), step \(step)"
                    assertAllClose(parameters, expected.floats, relative: 1e-5, absolute: 1e-6, label)
                    assertAllClose(m, reference.expAvg.floats, relative: 1e-5, absolute: 1e-7, label)
                    assertAllClose(v, reference.expAvgSq.floats, relative: 1e-5, absolute: 1e-9, label)
                }
            }
        }
    }

    /// Adam's first step moves every parameter by about lr against the sign of its gradient
    /// (m / sqrt(v) = sign(g) after bias correction), a property that needs no reference code.
    func testAdamFirstStepMovesByLearningRate() {
        let n = 33
        var parameters = [Float](repeating: 0, count: n)
        let gradients = Fixtures.normals(n, seed: 5).map { $0 == 0 ? 1 : $0 }
        var m = [Float](repeating: 0, count: n)
        var v = [Float](repeating: 0, count: n)
        parameters.withUnsafeMutableBufferPointer { p in
            gradients.withUnsafeBufferPointer { g in
                m.withUnsafeMutableBufferPointer { mp in
                    v.withUnsafeMutableBufferPointer { vp in
                        OptimizerKernels.adamStep(
                            parameters: p, gradients: g, firstMoment: mp, secondMoment: vp, learningRate: 0.01,
                            beta1: 0.9, beta2: 0.999, epsilon: 0, weightDecay: 0, decoupledWeightDecay: false, step: 1)
                    }
                }
            }
        }
        assertAllClose(parameters, gradients.map { $0 > 0 ? -0.01 : 0.01 }, relative: 1e-5)
    }
}
