import CGTKernels
import CGTTestSupport
import XCTest

@testable import CGTModel

/// `BatchNorm` in training mode: backward against finite differences, dense and spatial.
final class BatchNormGradientTests: XCTestCase {
    /// Checks d(sum w * y) / d(gamma, beta, x) for a BatchNorm of `shape` on a batch of `batch`.
    ///
    /// With `appliesReLU` a finite-difference step that moves some output across the ReLU's kink
    /// is left out (it measures the kink, not the gradient): at most half the parameter entries
    /// and a quarter of the inputs may be. (A smaller step crosses fewer kinks, but then the
    /// Float32 rounding of the outputs, divided by the step, outgrows the tolerance.)
    private func checkGradients(
        shape: [Int], batch: Int, seed: UInt64, layout: MapLayout = .channelsFirst, appliesReLU: Bool = false,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        let bn = BatchNorm(shape: shape, layout: layout, appliesReLU: appliesReLU)
        let harness = LayerHarness(bn, batch: batch)
        let gammaSlot = harness.parameterSlot("weight")
        let betaSlot = harness.parameterSlot("bias")
        // Away from the initial gamma = 1, beta = 0, so that a gradient that ignores them fails.
        _ = harness.store.parameter(gammaSlot).update(from: Fixtures.uniforms(bn.channels, seed: seed, 0.5, 1.5))
        _ = harness.store.parameter(betaSlot).update(from: Fixtures.normals(bn.channels, seed: seed + 1))
        // Each channel gets its own offset and spread, as real activations do.
        let count = batch * bn.inputCount
        let offsets = Fixtures.normals(bn.channels, seed: seed + 2, scale: 2)
        let spreads = Fixtures.uniforms(bn.channels, seed: seed + 3, 0.5, 2)
        let noise = Fixtures.normals(count, seed: seed + 4)
        let x = (0..<count).map { k -> Float in
            let c: Int
            switch layout {
            case .channelsFirst: c = (k / bn.spatial) % bn.channels
            case .channelsLast: c = k % bn.channels
            case .blocked8, .blocked16:
                let w = layout.blockWidth!
                c = (k / (bn.spatial * w)) % (bn.channels / w) * w + k % w
            }
            return offsets[c] + spreads[c] * noise[k]
        }
        let weights = Fixtures.normals(count, seed: seed + 5)
        let context = ForwardContext(mode: .training)
        let base = harness.forward(x, context: context).map { $0 > 0 }
        var kinked = false
        let loss = { (input: [Float]) -> Double in
            let y = harness.forward(input, context: context)
            if appliesReLU && y.map({ $0 > 0 }) != base { kinked = true }
            return weightedSum(y, weights)
        }
        /// The finite differences of `values`, with the entries whose steps crossed a kink removed from both.
        func compare(_ analytic: [Float], of values: (@escaping () -> Double) -> [Double], _ name: String) {
            var crossed = Set<Int>()
            var entry = 0
            let numeric = values {
                kinked = false
                defer { entry += 1 }
                let value = loss(x)
                if kinked { crossed.insert(entry / 2) }
                return value
            }
            // A step of gamma or beta moves every output of its channel: some cross the kink.
            XCTAssertLessThanOrEqual(
                crossed.count, analytic.count / 2, "\(name): too many steps cross the ReLU's kink", file: file,
                line: line)
            let kept = analytic.indices.filter { !crossed.contains($0) }
            assertGradientMatches(kept.map { analytic[$0] }, kept.map { numeric[$0] }, name, file: file, line: line)
        }

        // The forward inside `gradients` caches xhat and the batch statistics for the backward.
        let inputGradient = harness.gradients(input: x, outputGradient: weights, context: context)
        let gammaGradient = Array(harness.store.gradient(gammaSlot))
        let betaGradient = Array(harness.store.gradient(betaSlot))

        let h: Float = 1e-2
        compare(
            gammaGradient, of: { FiniteDifference.gradient(of: harness.store.parameter(gammaSlot), step: h, loss: $0) },
            "dgamma \(shape)")
        compare(
            betaGradient, of: { FiniteDifference.gradient(of: harness.store.parameter(betaSlot), step: h, loss: $0) },
            "dbeta \(shape)")
        var probe = x
        let inputNumeric = FiniteDifference.gradient(of: &probe, step: h) { input in
            kinked = false
            let value = loss(input)
            return kinked ? .nan : value
        }
        // An input step that crossed a kink made one of its two losses NaN.
        let kept = x.indices.filter { !inputNumeric[$0].isNaN }
        XCTAssertGreaterThan(
            kept.count, 3 * x.count / 4, "dx \(shape): too many steps cross the ReLU's kink", file: file, line: line)
        assertGradientMatches(
            kept.map { inputGradient[$0] }, kept.map { inputNumeric[$0] }, "dx \(shape)", file: file, line: line)
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
        var expectedBeta = [Double](repeating: 0, count: 3)
        var expectedGamma = [Double](repeating: 0, count: 3)
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
        assertAllClose(
            Array(harness.store.gradient(harness.parameterSlot("bias"))), expectedBeta.map(Float.init), relative: 1e-4,
            absolute: 1e-5)
        assertAllClose(
            Array(harness.store.gradient(harness.parameterSlot("weight"))), expectedGamma.map(Float.init),
            relative: 1e-4, absolute: 1e-5)
    }

    func testBatchNormWithReLUMatchesFiniteDifferences() {
        checkGradients(shape: [19], batch: 6, seed: 400, appliesReLU: true)
        checkGradients(shape: [3, 4, 5], batch: 4, seed: 500, appliesReLU: true)
        checkGradients(shape: [19, 3, 2], batch: 3, seed: 600, layout: .channelsLast, appliesReLU: true)
    }

    func testChannelsLastAndBlockedGradientsMatchFiniteDifferences() {
        checkGradients(shape: [19, 3, 2], batch: 3, seed: 700, layout: .channelsLast)
        checkGradients(shape: [32, 2, 3], batch: 2, seed: 800, layout: .blocked16)
        checkGradients(shape: [32, 2, 3], batch: 2, seed: 900, layout: .blocked16, appliesReLU: true)
        checkGradients(shape: [24, 2, 3], batch: 2, seed: 1000, layout: .blocked8)
        checkGradients(shape: [24, 2, 3], batch: 2, seed: 1100, layout: .blocked8, appliesReLU: true)
    }

    func testBatchNormWithReLUIsBatchNormThenReLU() {
        // The fused layer against the two layers it replaces, in training and at inference.
        for (shape, layout) in [
            ([19], MapLayout.channelsFirst), ([3, 4, 5], .channelsFirst), ([19, 3, 2], .channelsLast),
        ] {
            let batch = 4
            let label = "\(shape) \(layout)"
            let fused = LayerHarness(BatchNorm(shape: shape, layout: layout, appliesReLU: true), batch: batch)
            let plain = LayerHarness(BatchNorm(shape: shape, layout: layout), batch: batch)
            let relu = LayerHarness(ReLU(shape: shape), batch: batch)
            let count = batch * shape.reduce(1, *)
            let x = Fixtures.normals(count, seed: 31)
            let dy = Fixtures.normals(count, seed: 32)
            let context = ForwardContext(mode: .training)
            let y = fused.forward(x, context: context)
            let z = plain.forward(x, context: context)
            let a = relu.forward(z, context: context)
            assertExactlyEqual(y, a, "y, \(label)")
            XCTAssertTrue(y.contains(0) && y.contains { $0 > 0 }, "\(label): the ReLU clamps nothing or everything")
            let dx = fused.backward(input: x, output: y, outputGradient: dy)
            let dz = relu.backward(input: z, output: a, outputGradient: dy)
            let dxPlain = plain.backward(input: x, output: z, outputGradient: dz)
            assertAllClose(dx, dxPlain, relative: 1e-5, absolute: 1e-6, "dx, \(label)")
            assertAllClose(
                Array(fused.store.gradients), Array(plain.store.gradients), relative: 1e-5, absolute: 1e-6,
                "dgamma, dbeta, \(label)")
            let inference = ForwardContext(mode: .inference)
            assertExactlyEqual(
                fused.forward(x, context: inference),
                relu.forward(plain.forward(x, context: inference), context: inference),
                "inference y, \(label)")
        }
    }

    func testSynchronisedKernelsAndOneDNNAgree() {
        // A reducer that leaves the sums alone (one rank) sends BatchNorm of maps through cgt's
        // kernels, none through oneDNN's primitives; the finite-difference checks above see the
        // latter for maps, the kernels for features.
        let cases: [([Int], MapLayout)] = [
            ([19], .channelsFirst), ([3, 4, 5], .channelsFirst), ([19, 3, 2], .channelsLast), ([32, 2, 3], .blocked16),
            ([24, 2, 3], .blocked8),
        ]
        for (shape, layout) in cases {
            for relu in [false, true] {
                let batch = 3
                let label = "\(shape) \(layout)\(relu ? " + ReLU" : "")"
                let oneDNN = LayerHarness(BatchNorm(shape: shape, layout: layout, appliesReLU: relu), batch: batch)
                let synchronised = BatchNorm(shape: shape, layout: layout, appliesReLU: relu)
                synchronised.statisticsReducer = { _ in }
                let kernels = LayerHarness(synchronised, batch: batch)
                XCTAssertTrue(
                    (oneDNN.layer as! BatchNorm).implementation(batch: batch).hasPrefix(
                        shape.count == 3 ? "oneDNN" : "cgt"), label)
                XCTAssertTrue(synchronised.implementation(batch: batch).hasPrefix("cgt"), label)
                let count = batch * shape.reduce(1, *)
                let x = Fixtures.normals(count, seed: 41, scale: 2)
                let dy = Fixtures.normals(count, seed: 42)
                let context = ForwardContext(mode: .training)
                let y = oneDNN.forward(x, context: context)
                let yKernels = kernels.forward(x, context: context)
                assertAllClose(y, yKernels, relative: 1e-5, absolute: 1e-5, "y, \(label)")
                let dx = oneDNN.backward(input: x, output: y, outputGradient: dy)
                let dxKernels = kernels.backward(input: x, output: yKernels, outputGradient: dy)
                assertAllClose(dx, dxKernels, relative: 1e-4, absolute: 1e-5, "dx, \(label)")
                assertAllClose(
                    Array(oneDNN.store.gradients), Array(kernels.store.gradients), relative: 1e-4, absolute: 1e-5,
                    "dgamma, dbeta, \(label)")
                assertAllClose(
                    Array(oneDNN.store.buffers), Array(kernels.store.buffers), relative: 1e-5, absolute: 1e-6,
                    "running statistics, \(label)")
            }
        }
    }
}
