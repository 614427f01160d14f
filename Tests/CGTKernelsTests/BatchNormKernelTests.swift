import CGTKernels
import CGTTestSupport
import XCTest

final class BatchNormKernelTests: XCTestCase {
    typealias Shape = BatchNormKernels.Shape

    /// Dense (spatial 1) and convolutional (spatial > 1) shapes, each with and without a vector tail.
    let shapes: [Shape] = [
        Shape(batch: 5, channels: 3, spatial: 7),
        Shape(batch: 6, channels: 1, spatial: 1),
        Shape(batch: 7, channels: 17, spatial: 1),
        Shape(batch: 4, channels: 16, spatial: 1),
        Shape(batch: 3, channels: 33, spatial: 1),
        Shape(batch: 3, channels: 2, spatial: 33),
        Shape(batch: 2, channels: 3, spatial: 32),
        Shape(batch: 2, channels: 2, spatial: 1),
    ]

    struct TrainingResult {
        var output, normalized, mean, invStd, runningMean, runningVariance: [Float]
    }

    private func forwardTraining(
        _ x: [Float], _ shape: Shape, gamma: [Float], beta: [Float],
        runningMean: [Float], runningVariance: [Float], momentum: Float, epsilon: Float,
        reducer: BatchNormKernels.StatisticsReducer? = nil, count: UnsafeMutablePointer<Float>? = nil
    ) -> TrainingResult {
        let c = shape.channels
        var r = TrainingResult(
            output: .init(repeating: .nan, count: shape.count), normalized: .init(repeating: .nan, count: shape.count),
            mean: .init(repeating: .nan, count: c), invStd: .init(repeating: .nan, count: c),
            runningMean: runningMean, runningVariance: runningVariance)
        x.withUnsafeBufferPointer { xp in
            gamma.withUnsafeBufferPointer { g in
                beta.withUnsafeBufferPointer { b in
                    r.runningMean.withUnsafeMutableBufferPointer { rm in
                        r.runningVariance.withUnsafeMutableBufferPointer { rv in
                            r.mean.withUnsafeMutableBufferPointer { mean in
                                r.invStd.withUnsafeMutableBufferPointer { inv in
                                    r.normalized.withUnsafeMutableBufferPointer { xhat in
                                        r.output.withUnsafeMutableBufferPointer { y in
                                            let m = BatchNormKernels.forwardTraining(
                                                xp, shape: shape, gamma: g, beta: b, runningMean: rm,
                                                runningVariance: rv,
                                                momentum: momentum, epsilon: epsilon, mean: mean, invStd: inv,
                                                normalized: xhat, output: y, reducer: reducer)
                                            count?.pointee = m
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return r
    }

    private func backward(
        dy: [Float], normalized: [Float], _ shape: Shape, gamma: [Float], invStd: [Float],
        wantInputGradient: Bool = true,
        reducer: BatchNormKernels.StatisticsReducer? = nil, reductionCount: Float? = nil
    ) -> (dx: [Float], dgamma: [Float], dbeta: [Float]) {
        var dx = [Float](repeating: .nan, count: shape.count)
        var dgamma = [Float](repeating: .nan, count: shape.channels)
        var dbeta = [Float](repeating: .nan, count: shape.channels)
        dy.withUnsafeBufferPointer { g in
            normalized.withUnsafeBufferPointer { h in
                gamma.withUnsafeBufferPointer { gm in
                    invStd.withUnsafeBufferPointer { inv in
                        dgamma.withUnsafeMutableBufferPointer { dg in
                            dbeta.withUnsafeMutableBufferPointer { db in
                                dx.withUnsafeMutableBufferPointer { d in
                                    BatchNormKernels.backward(
                                        outputGradient: g, normalized: h, shape: shape, gamma: gm, invStd: inv,
                                        gammaGradient: dg, betaGradient: db, inputGradient: wantInputGradient ? d : nil,
                                        reducer: reducer, reductionCount: reductionCount)
                                }
                            }
                        }
                    }
                }
            }
        }
        return (dx, dgamma, dbeta)
    }

    /// Inputs with a mean far from zero, so a one-pass variance would lose digits.
    private func inputs(_ shape: Shape, seed: UInt64) -> [Float] {
        Fixtures.normals(shape.count, seed: seed, scale: 2).map { $0 + 3 }
    }

    /// A hand-computed case: one channel holding 1, 2, 3, 4 has mean 2.5, biased variance 1.25 and
    /// unbiased variance 5/3; the running statistics move a tenth of the way towards them.
    func testForwardTrainingOnAHandComputedExample() {
        let shape = Shape(batch: 2, channels: 1, spatial: 2)
        let r = forwardTraining(
            [1, 2, 3, 4], shape, gamma: [2], beta: [0.5], runningMean: [0], runningVariance: [1],
            momentum: 0.1, epsilon: 0)
        let invStd = 1 / Float(1.25).squareRoot()
        assertClose(r.mean[0], 2.5)
        assertClose(r.invStd[0], invStd)
        assertAllClose(r.normalized, [-1.5, -0.5, 0.5, 1.5].map { $0 * invStd })
        assertAllClose(r.output, [-1.5, -0.5, 0.5, 1.5].map { 2 * $0 * invStd + 0.5 })
        assertClose(r.runningMean[0], 0.25)
        assertClose(r.runningVariance[0], 0.9 + 0.1 * 5 / 3)
    }

    /// Training-mode forward matches the Double reference: output, xhat, batch mean, invStd, and the
    /// running statistics updated with momentum and the unbiased variance m / (m - 1).
    func testForwardTrainingMatchesDoubleReference() {
        let momentum: Float = 0.1
        let epsilon: Float = 1e-5
        for (k, shape) in shapes.enumerated() {
            let c = shape.channels
            let x = inputs(shape, seed: UInt64(k))
            let gamma = Fixtures.uniforms(c, seed: 100, 0.5, 1.5)
            let beta = Fixtures.normals(c, seed: 101)
            let runningMean = Fixtures.normals(c, seed: 102)
            let runningVariance = Fixtures.uniforms(c, seed: 103, 0.5, 2)
            let r = forwardTraining(
                x, shape, gamma: gamma, beta: beta, runningMean: runningMean, runningVariance: runningVariance,
                momentum: momentum, epsilon: epsilon)
            let ref = Reference.batchNormForward(
                x.doubles, batch: shape.batch, channels: c, spatial: shape.spatial,
                gamma: gamma.doubles, beta: beta.doubles, epsilon: Double(epsilon))
            let m = Double(shape.reductionSize)
            let mu = Double(momentum)
            let expectedRunningMean = (0..<c).map { (1 - mu) * Double(runningMean[$0]) + mu * ref.mean[$0] }
            let expectedRunningVariance = (0..<c).map {
                (1 - mu) * Double(runningVariance[$0]) + mu * ref.variance[$0] * m / (m - 1)
            }
            let label = "shape \(shape)"
            assertAllClose(r.mean, ref.mean.floats, relative: 1e-5, absolute: 1e-6, label)
            assertAllClose(r.invStd, ref.invStd.floats, relative: 1e-5, absolute: 1e-6, label)
            assertAllClose(r.normalized, ref.normalized.floats, relative: 1e-4, absolute: 1e-5, label)
            assertAllClose(r.output, ref.output.floats, relative: 1e-4, absolute: 1e-5, label)
            assertAllClose(r.runningMean, expectedRunningMean.floats, relative: 1e-5, absolute: 1e-6, label)
            assertAllClose(r.runningVariance, expectedRunningVariance.floats, relative: 1e-5, absolute: 1e-6, label)
        }
    }

    /// With momentum 1 / (k + 1) on the k-th batch the running mean is the plain average of the batch means.
    func testRunningMeanWithHarmonicMomentumIsTheAverageOverBatches() {
        let shape = Shape(batch: 4, channels: 17, spatial: 1)
        var runningMean = [Float](repeating: 0, count: 17)
        var runningVariance = [Float](repeating: 1, count: 17)
        var meanOfMeans = [Double](repeating: 0, count: 17)
        let batches = 3
        for k in 0..<batches {
            let x = inputs(shape, seed: UInt64(50 + k))
            let r = forwardTraining(
                x, shape, gamma: .init(repeating: 1, count: 17), beta: .init(repeating: 0, count: 17),
                runningMean: runningMean, runningVariance: runningVariance, momentum: 1 / Float(k + 1), epsilon: 1e-5)
            runningMean = r.runningMean
            runningVariance = r.runningVariance
            let ref = Reference.batchNormForward(
                x.doubles, batch: 4, channels: 17, spatial: 1, gamma: .init(repeating: 1, count: 17),
                beta: .init(repeating: 0, count: 17), epsilon: 1e-5)
            for j in 0..<17 { meanOfMeans[j] += ref.mean[j] / Double(batches) }
        }
        assertAllClose(runningMean, meanOfMeans.floats, relative: 1e-5, absolute: 1e-6)
    }

    /// Inference-mode forward is (x - running mean) / sqrt(running variance + eps) * gamma + beta.
    func testForwardInferenceMatchesScalarFormula() {
        let epsilon: Float = 1e-3
        for (k, shape) in shapes.enumerated() {
            let c = shape.channels
            let s = shape.spatial
            let x = inputs(shape, seed: UInt64(200 + k))
            let gamma = Fixtures.uniforms(c, seed: 201, 0.5, 1.5)
            let beta = Fixtures.normals(c, seed: 202)
            let runningMean = Fixtures.normals(c, seed: 203).map { $0 + 3 }
            let runningVariance = Fixtures.uniforms(c, seed: 204, 0.5, 5)
            var expected = [Double](repeating: 0, count: shape.count)
            for n in 0..<shape.batch {
                for j in 0..<c {
                    for i in 0..<s {
                        let index = (n * c + j) * s + i
                        expected[index] =
                            (Double(x[index]) - Double(runningMean[j]))
                            / (Double(runningVariance[j]) + Double(epsilon)).squareRoot() * Double(gamma[j])
                            + Double(beta[j])
                    }
                }
            }
            var y = [Float](repeating: .nan, count: shape.count)
            x.withUnsafeBufferPointer { xp in
                gamma.withUnsafeBufferPointer { g in
                    beta.withUnsafeBufferPointer { b in
                        runningMean.withUnsafeBufferPointer { rm in
                            runningVariance.withUnsafeBufferPointer { rv in
                                y.withUnsafeMutableBufferPointer {
                                    BatchNormKernels.forwardInference(
                                        xp, shape: shape, gamma: g, beta: b, runningMean: rm, runningVariance: rv,
                                        epsilon: epsilon, output: $0)
                                }
                            }
                        }
                    }
                }
            }
            assertAllClose(y, expected.floats, relative: 1e-5, absolute: 1e-5, "shape \(shape)")
        }
    }

    /// backward matches the textbook formula evaluated in Double on the same dy, xhat, gamma and invStd.
    func testBackwardMatchesScalarFormula() {
        for (k, shape) in shapes.enumerated() {
            let c = shape.channels
            let x = inputs(shape, seed: UInt64(300 + k))
            let gamma = Fixtures.uniforms(c, seed: 301, 0.5, 1.5)
            let ref = Reference.batchNormForward(
                x.doubles, batch: shape.batch, channels: c, spatial: shape.spatial, gamma: gamma.doubles,
                beta: .init(repeating: 0, count: c), epsilon: 1e-5)
            let xhat = ref.normalized.floats
            let invStd = ref.invStd.floats
            let dy = Fixtures.normals(shape.count, seed: UInt64(302 + k))
            let expected = Reference.batchNormBackward(
                dy: dy.doubles, normalized: xhat.doubles, batch: shape.batch, channels: c, spatial: shape.spatial,
                gamma: gamma.doubles, invStd: invStd.doubles)
            let result = backward(dy: dy, normalized: xhat, shape, gamma: gamma, invStd: invStd)
            let label = "shape \(shape)"
            // Scale-aware bounds: the sums run over m products of size ~1.
            let sumTolerance = Float(1e-6 * Double(shape.reductionSize)) * 4
            assertAllClose(result.dbeta, expected.dbeta.floats, relative: 1e-5, absolute: sumTolerance, label)
            assertAllClose(result.dgamma, expected.dgamma.floats, relative: 1e-5, absolute: sumTolerance, label)
            assertAllClose(result.dx, expected.dx.floats, relative: 1e-4, absolute: 1e-5, label)
        }
    }

    /// Without an input-gradient buffer, backward still produces the parameter gradients.
    func testBackwardWithoutInputGradient() {
        let shape = Shape(batch: 5, channels: 3, spatial: 7)
        let xhat = Fixtures.normals(shape.count, seed: 400)
        let dy = Fixtures.normals(shape.count, seed: 401)
        let gamma: [Float] = [1, 2, 3]
        let invStd: [Float] = [0.5, 1, 2]
        let expected = Reference.batchNormBackward(
            dy: dy.doubles, normalized: xhat.doubles, batch: 5, channels: 3, spatial: 7,
            gamma: gamma.doubles, invStd: invStd.doubles)
        let result = backward(dy: dy, normalized: xhat, shape, gamma: gamma, invStd: invStd, wantInputGradient: false)
        assertAllClose(result.dbeta, expected.dbeta.floats, relative: 1e-5, absolute: 1e-5)
        assertAllClose(result.dgamma, expected.dgamma.floats, relative: 1e-5, absolute: 1e-5)
        XCTAssertTrue(
            result.dx.allSatisfy(\.isNaN), "the input gradient buffer was not requested and must stay untouched")
    }

    /// The gradients of L = sum(w * y) from forwardTraining + backward match central differences of
    /// the Double forward with respect to x, gamma and beta.
    func testBackwardMatchesFiniteDifferences() {
        let epsilon = 1e-5
        for shape in [Shape(batch: 5, channels: 3, spatial: 7), Shape(batch: 6, channels: 17, spatial: 1)] {
            let c = shape.channels
            let b = shape.batch
            let s = shape.spatial
            let x = inputs(shape, seed: 500)
            let gamma = Fixtures.uniforms(c, seed: 501, 0.5, 1.5)
            let beta = Fixtures.normals(c, seed: 502)
            let w = Fixtures.normals(shape.count, seed: 503)
            func loss(_ x: [Double], _ gamma: [Double], _ beta: [Double]) -> Double {
                let y = Reference.batchNormForward(
                    x, batch: b, channels: c, spatial: s, gamma: gamma, beta: beta,
                    epsilon: epsilon
                ).output
                var total = 0.0
                for i in 0..<y.count { total += Double(w[i]) * y[i] }
                return total
            }
            func centralDifferences(_ values: [Double], _ f: ([Double]) -> Double) -> [Double] {
                let h = 1e-5
                return values.indices.map { i in
                    var plus = values
                    var minus = values
                    plus[i] += h
                    minus[i] -= h
                    return (f(plus) - f(minus)) / (2 * h)
                }
            }
            let xd = x.doubles
            let gd = gamma.doubles
            let bd = beta.doubles
            let numericX = centralDifferences(xd) { loss($0, gd, bd) }
            let numericGamma = centralDifferences(gd) { loss(xd, $0, bd) }
            let numericBeta = centralDifferences(bd) { loss(xd, gd, $0) }

            let forward = forwardTraining(
                x, shape, gamma: gamma, beta: beta, runningMean: .init(repeating: 0, count: c),
                runningVariance: .init(repeating: 1, count: c), momentum: 0.1, epsilon: Float(epsilon))
            let result = backward(dy: w, normalized: forward.normalized, shape, gamma: gamma, invStd: forward.invStd)
            XCTAssertLessThan(maxRelativeError(result.dx.doubles, numericX), 1e-3, "dx, shape \(shape)")
            XCTAssertLessThan(maxRelativeError(result.dgamma.doubles, numericGamma), 1e-3, "dgamma, shape \(shape)")
            XCTAssertLessThan(maxRelativeError(result.dbeta.doubles, numericBeta), 1e-3, "dbeta, shape \(shape)")
        }
    }

    /// Sync BatchNorm: with a reducer that adds a second rank's sums, forward and backward on this
    /// rank's rows equal a single-process batch norm over both ranks' rows, the returned count is
    /// both ranks' values, and the parameter gradients stay this rank's own sums.
    func testReducerGivesStatisticsOfTheCombinedBatch() {
        for (c, s) in [(3, 7), (17, 1)] {
            let local = Shape(batch: 3, channels: c, spatial: s)
            let other = Shape(batch: 4, channels: c, spatial: s)
            let xLocal = inputs(local, seed: 600)
            let xOther = inputs(other, seed: 601).map { $0 * 1.5 - 1 }
            let gamma = Fixtures.uniforms(c, seed: 602, 0.5, 1.5)
            let beta = Fixtures.normals(c, seed: 603)
            let epsilon = 1e-5
            let momentum = 0.1
            let combined = Reference.batchNormForward(
                (xLocal + xOther).doubles, batch: 7, channels: c, spatial: s, gamma: gamma.doubles, beta: beta.doubles,
                epsilon: epsilon)

            // The other rank's contributions, from its rows of the combined reference.
            var otherSums = [Double](repeating: 0, count: c)
            var otherSquares = [Double](repeating: 0, count: c)
            for n in 0..<4 {
                for j in 0..<c {
                    for i in 0..<s {
                        let value = Double(xOther[(n * c + j) * s + i])
                        otherSums[j] += value
                        otherSquares[j] += (value - combined.mean[j]) * (value - combined.mean[j])
                    }
                }
            }
            var forwardCalls: [Int] = []
            let forwardReducer: BatchNormKernels.StatisticsReducer = { buffer in
                forwardCalls.append(buffer.count)
                if buffer.count == c + 1 {
                    for j in 0..<c { buffer[j] += Float(otherSums[j]) }
                    buffer[c] += Float(other.reductionSize)
                } else {
                    XCTAssertEqual(buffer.count, c)
                    for j in 0..<c { buffer[j] += Float(otherSquares[j]) }
                }
            }
            var count: Float = .nan
            let runningMean = Fixtures.normals(c, seed: 604)
            let runningVariance = Fixtures.uniforms(c, seed: 605, 0.5, 2)
            let r = forwardTraining(
                xLocal, local, gamma: gamma, beta: beta, runningMean: runningMean, runningVariance: runningVariance,
                momentum: Float(momentum), epsilon: Float(epsilon), reducer: forwardReducer, count: &count)
            let label = "channels \(c), spatial \(s)"
            XCTAssertEqual(forwardCalls, [c + 1, c], label)
            XCTAssertEqual(count, Float(7 * s), label)
            let m = Double(7 * s)
            assertAllClose(r.mean, combined.mean.floats, relative: 1e-5, absolute: 1e-6, label)
            assertAllClose(r.invStd, combined.invStd.floats, relative: 1e-5, absolute: 1e-6, label)
            assertAllClose(
                r.normalized, Array(combined.normalized[..<local.count]).floats, relative: 1e-4, absolute: 1e-5, label)
            assertAllClose(
                r.output, Array(combined.output[..<local.count]).floats, relative: 1e-4, absolute: 1e-5, label)
            assertAllClose(
                r.runningMean,
                (0..<c).map { (1 - momentum) * Double(runningMean[$0]) + momentum * combined.mean[$0] }.floats,
                relative: 1e-5, absolute: 1e-6, label)
            assertAllClose(
                r.runningVariance,
                (0..<c).map {
                    (1 - momentum) * Double(runningVariance[$0]) + momentum * combined.variance[$0] * m / (m - 1)
                }.floats, relative: 1e-5, absolute: 1e-6, label)

            let dy = Fixtures.normals(7 * c * s, seed: 606)
            let expected = Reference.batchNormBackward(
                dy: dy.doubles, normalized: combined.normalized, batch: 7, channels: c, spatial: s,
                gamma: gamma.doubles, invStd: combined.invStd)
            var otherGammaSums = [Double](repeating: 0, count: c)
            var otherBetaSums = [Double](repeating: 0, count: c)
            var localGammaSums = [Double](repeating: 0, count: c)
            var localBetaSums = [Double](repeating: 0, count: c)
            for n in 0..<7 {
                for j in 0..<c {
                    for i in 0..<s {
                        let index = (n * c + j) * s + i
                        if n < 3 {
                            localBetaSums[j] += Double(dy[index])
                            localGammaSums[j] += Double(dy[index]) * Double(r.normalized[index])
                        } else {
                            otherBetaSums[j] += Double(dy[index])
                            otherGammaSums[j] += Double(dy[index]) * combined.normalized[index]
                        }
                    }
                }
            }
            var backwardCalls = 0
            let backwardReducer: BatchNormKernels.StatisticsReducer = { buffer in
                backwardCalls += 1
                XCTAssertEqual(buffer.count, 2 * c)
                for j in 0..<c {
                    buffer[j] += Float(otherGammaSums[j])
                    buffer[c + j] += Float(otherBetaSums[j])
                }
            }
            let result = backward(
                dy: Array(dy[..<local.count]), normalized: r.normalized, local, gamma: gamma, invStd: r.invStd,
                reducer: backwardReducer, reductionCount: count)
            XCTAssertEqual(backwardCalls, 1, label)
            assertAllClose(result.dx, Array(expected.dx[..<local.count]).floats, relative: 1e-4, absolute: 1e-5, label)
            assertAllClose(result.dgamma, localGammaSums.floats, relative: 1e-5, absolute: 1e-5, label)
            assertAllClose(result.dbeta, localBetaSums.floats, relative: 1e-5, absolute: 1e-5, label)
        }
    }
}
