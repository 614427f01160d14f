import CGTKernels
@testable import CGTModel
import CGTTestSupport
import XCTest

/// `BatchNorm` in training mode: backward against finite differences, dense and spatial.
final class BatchNormGradientTests: XCTestCase {
    /// Checks d(sum w * y) / d(gamma, beta, x) for a BatchNorm of `shape` on a batch of `batch`.
    private func checkGradients(shape: [Int], batch: Int, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) {
        let bn = BatchNorm(shape: shape)
        let harness = LayerHarness(bn, batch: batch)
        let gammaSlot = harness.parameterSlot("weight"), betaSlot = harness.parameterSlot("bias")
        // Away from the initial gamma = 1, beta = 0, so that a gradient that ignores them fails.
        _ = harness.store.parameter(gammaSlot).update(from: Fixtures.uniforms(bn.channels, seed: seed, 0.5, 1.5))
        _ = harness.store.parameter(betaSlot).update(from: Fixtures.normals(bn.channels, seed: seed + 1))
        // Each channel gets its own offset and spread, as real activations do.
        let count = batch * bn.inputCount
        let offsets = Fixtures.normals(bn.channels, seed: seed + 2, scale: 2)
        let spreads = Fixtures.uniforms(bn.channels, seed: seed + 3, 0.5, 2)
        let noise = Fixtures.normals(count, seed: seed + 4)
        var x = (0..<count).map { k -> Float in
            let c = (k / bn.spatial) % bn.channels
            return offsets[c] + spreads[c] * noise[k]
        }
        let weights = Fixtures.normals(count, seed: seed + 5)
        let context = ForwardContext(mode: .training)
        let loss = { (input: [Float]) in weightedSum(harness.forward(input, context: context), weights) }

        // The forward inside `gradients` caches xhat and the batch statistics for the backward.
        let inputGradient = harness.gradients(input: x, outputGradient: weights, context: context)
        let gammaGradient = Array(harness.store.gradient(gammaSlot))
        let betaGradient = Array(harness.store.gradient(betaSlot))

        let h: Float = 1e-2
        assertGradientMatches(gammaGradient, FiniteDifference.gradient(of: harness.store.parameter(gammaSlot), step: h) { loss(x) },
                              "dgamma \(shape)", file: file, line: line)
        assertGradientMatches(betaGradient, FiniteDifference.gradient(of: harness.store.parameter(betaSlot), step: h) { loss(x) },
                              "dbeta \(shape)", file: file, line: line)
        assertGradientMatches(inputGradient, FiniteDifference.gradient(of: &x, step: h, loss: loss),
                              "dx \(shape)", file: file, line: line)
    }

    func testDenseGradientsMatchFiniteDifferences() {
        // 19 features: a 16-lane vector and a 3-value tail.
        checkGradients(shape: [19], batch: 6, seed: 100)
    }

    func testSpatialGradientsMatchFiniteDifferences() {
        // [C, H, W] = [3, 4, 5]: planes of 20 values, a 16-lane vector and a 4-value tail.
        checkGradients(shape: [3, 4, 5], batch: 4, seed: 200)
    }

    func testSpatialGradientsWithSmallPlanes() {
        // Planes of 2 x 2 values: the spatial path with no full vector at all.
        checkGradients(shape: [5, 2, 2], batch: 3, seed: 300)
    }

    func testBetaGradientIsTheSumOfOutputGradientsPerChannel() {
        // dbeta_c = sum over batch and positions of dy; dgamma_c = sum of dy * xhat, with xhat
        // recomputed here in Double from the biased batch variance.
        let shape = [3, 2, 5]
        let batch = 4
        let harness = LayerHarness(BatchNorm(shape: shape), batch: batch)
        let x = Fixtures.normals(batch * 30, seed: 7, scale: 3)
        let dy = Fixtures.normals(batch * 30, seed: 8)
        _ = harness.gradients(input: x, outputGradient: dy, context: ForwardContext(mode: .training))
        var expectedBeta = [Double](repeating: 0, count: 3), expectedGamma = [Double](repeating: 0, count: 3)
        for c in 0..<3 {
            var values: [Double] = []
            var grads: [Double] = []
            for n in 0..<batch {
                for s in 0..<10 {
                    values.append(Double(x[(n * 3 + c) * 10 + s]))
                    grads.append(Double(dy[(n * 3 + c) * 10 + s]))
                }
            }
            let mean = values.reduce(0, +) / Double(values.count)
            let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)
            let invStd = 1 / (variance + 1e-5).squareRoot()
            expectedBeta[c] = grads.reduce(0, +)
            expectedGamma[c] = zip(values, grads).map { ($0 - mean) * invStd * $1 }.reduce(0, +)
        }
        assertAllClose(Array(harness.store.gradient(harness.parameterSlot("bias"))), expectedBeta.map(Float.init), relative: 1e-4, absolute: 1e-5)
        assertAllClose(Array(harness.store.gradient(harness.parameterSlot("weight"))), expectedGamma.map(Float.init), relative: 1e-4, absolute: 1e-5)
    }
}
