import CGTKernels
import CGTTestSupport
import XCTest

@testable import CGTModel

/// BatchNorm in each `ForwardMode` against formulas evaluated in Double; Dropout outside training.
final class BatchNormModeTests: XCTestCase {
    /// Per-channel statistics of `[batch, channels, spatial]` values, in Double.
    private struct ChannelStatistics {
        var mean: [Double]
        /// Divided by the number of values (what the forward pass normalises with).
        var biasedVariance: [Double]
        /// Divided by the number of values minus one (what PyTorch keeps in running_var).
        var unbiasedVariance: [Double]

        init(_ x: [Float], batch: Int, channels: Int, spatial: Int) {
            mean = []
            biasedVariance = []
            unbiasedVariance = []
            for c in 0..<channels {
                var values: [Double] = []
                for n in 0..<batch {
                    for s in 0..<spatial { values.append(Double(x[(n * channels + c) * spatial + s])) }
                }
                let m = values.reduce(0, +) / Double(values.count)
                let squares = values.map { ($0 - m) * ($0 - m) }.reduce(0, +)
                mean.append(m)
                biasedVariance.append(squares / Double(values.count))
                unbiasedVariance.append(squares / Double(values.count - 1))
            }
        }
    }

    /// (x - mean[c]) / sqrt(variance[c] + eps) * gamma[c] + beta[c], in Double.
    private func normalize(
        _ x: [Float], channels: Int, spatial: Int, mean: [Double], variance: [Double], gamma: [Float], beta: [Float]
    ) -> [Float] {
        x.indices.map { k in
            let c = (k / spatial) % channels
            return Float(
                (Double(x[k]) - mean[c]) / (variance[c] + 1e-5).squareRoot() * Double(gamma[c]) + Double(beta[c]))
        }
    }

    private struct Setup {
        let bn: BatchNorm
        let harness: LayerHarness
        let gamma: [Float]
        let beta: [Float]
        var mean: UnsafeMutableBufferPointer<Float> { harness.store.buffer(harness.bufferSlot("running_mean")) }
        var variance: UnsafeMutableBufferPointer<Float> { harness.store.buffer(harness.bufferSlot("running_var")) }
    }

    private func setup(shape: [Int], batch: Int, seed: UInt64) -> Setup {
        let bn = BatchNorm(shape: shape)
        let harness = LayerHarness(bn, batch: batch)
        let gamma = Fixtures.uniforms(bn.channels, seed: seed, 0.5, 1.5)
        let beta = Fixtures.normals(bn.channels, seed: seed + 1)
        _ = harness.store.parameter(harness.parameterSlot("weight")).update(from: gamma)
        _ = harness.store.parameter(harness.parameterSlot("bias")).update(from: beta)
        XCTAssertEqual(harness.store.bufferSlots.map(\.name), ["layer.running_mean", "layer.running_var"])
        return Setup(bn: bn, harness: harness, gamma: gamma, beta: beta)
    }

    /// Inputs with a per-channel offset, so that means are far from 0.
    private func input(_ bn: BatchNorm, batch: Int, seed: UInt64) -> [Float] {
        let offsets = Fixtures.normals(bn.channels, seed: seed + 7, scale: 3)
        return Fixtures.normals(batch * bn.inputCount, seed: seed, scale: 2).enumerated().map {
            $1 + offsets[($0 / bn.spatial) % bn.channels]
        }
    }

    func testInferenceUsesRunningStatistics() {
        for (shape, batch) in [([19], 4), ([3, 4, 5], 2)] {
            let s = setup(shape: shape, batch: batch, seed: 10)
            let runningMean = Fixtures.normals(s.bn.channels, seed: 12)
            let runningVariance = Fixtures.uniforms(s.bn.channels, seed: 13, 0.3, 3)
            _ = s.mean.update(from: runningMean)
            _ = s.variance.update(from: runningVariance)
            let x = input(s.bn, batch: batch, seed: 14)
            let y = s.harness.forward(x, context: ForwardContext(mode: .inference))
            let expected = normalize(
                x, channels: s.bn.channels, spatial: s.bn.spatial, mean: runningMean.map(Double.init),
                variance: runningVariance.map(Double.init), gamma: s.gamma, beta: s.beta)
            assertAllClose(y, expected, relative: 1e-5, absolute: 1e-5, "\(shape)")
            // Inference leaves the running statistics and the batch count alone.
            XCTAssertEqual(Array(s.mean), runningMean)
            XCTAssertEqual(Array(s.variance), runningVariance)
            XCTAssertEqual(s.bn.batchesTracked, 0)
            // A single sample is fine at inference.
            let one = LayerHarness(BatchNorm(shape: shape), batch: 1)
            XCTAssertEqual(
                one.forward(Array(x[0..<s.bn.inputCount]), context: ForwardContext(mode: .inference)).count,
                s.bn.inputCount)
        }
    }

    func testTrainingNormalisesWithBatchStatisticsAndUpdatesRunningOnesWithMomentum() {
        for (shape, batch) in [([19], 6), ([3, 4, 5], 3)] {
            let s = setup(shape: shape, batch: batch, seed: 20)
            let x = input(s.bn, batch: batch, seed: 21)
            let statistics = ChannelStatistics(x, batch: batch, channels: s.bn.channels, spatial: s.bn.spatial)
            let y = s.harness.forward(x, context: ForwardContext(mode: .training))
            assertAllClose(
                y,
                normalize(
                    x, channels: s.bn.channels, spatial: s.bn.spatial, mean: statistics.mean,
                    variance: statistics.biasedVariance, gamma: s.gamma, beta: s.beta),
                relative: 1e-4, absolute: 1e-5, "\(shape) output")
            // From the initial (0, 1): running = 0.9 * initial + 0.1 * batch statistic (unbiased variance).
            assertAllClose(
                Array(s.mean), statistics.mean.map { Float(0.1 * $0) }, relative: 1e-5, absolute: 1e-6,
                "\(shape) running_mean")
            assertAllClose(
                Array(s.variance), statistics.unbiasedVariance.map { Float(0.9 + 0.1 * $0) }, relative: 1e-5,
                absolute: 1e-6,
                "\(shape) running_var")
            XCTAssertEqual(s.bn.batchesTracked, 1)
            // A second batch: the update compounds.
            let x2 = input(s.bn, batch: batch, seed: 22)
            let statistics2 = ChannelStatistics(x2, batch: batch, channels: s.bn.channels, spatial: s.bn.spatial)
            _ = s.harness.forward(x2, context: ForwardContext(mode: .training))
            assertAllClose(
                Array(s.mean),
                (0..<s.bn.channels).map { Float(0.9 * 0.1 * statistics.mean[$0] + 0.1 * statistics2.mean[$0]) },
                relative: 1e-5, absolute: 1e-6, "\(shape) running_mean after two batches")
            assertAllClose(
                Array(s.variance),
                (0..<s.bn.channels).map {
                    Float(0.9 * (0.9 + 0.1 * statistics.unbiasedVariance[$0]) + 0.1 * statistics2.unbiasedVariance[$0])
                },
                relative: 1e-5, absolute: 1e-6, "\(shape) running_var after two batches")
            XCTAssertEqual(s.bn.batchesTracked, 2)
        }
    }

    func testRecalibrationAveragesBatchStatistics() {
        for (shape, batch) in [([19], 5), ([3, 4, 5], 2)] {
            let s = setup(shape: shape, batch: batch, seed: 30)
            // Stale running statistics from training: recalibration must forget them entirely.
            s.mean.update(repeating: 5)
            s.variance.update(repeating: 9)
            s.bn.setBatchesTracked(17)
            let k = 4
            var means = [[Double]]()
            var variances = [[Double]]()
            for index in 0..<k {
                let x = input(s.bn, batch: batch, seed: 31 + UInt64(index))
                let statistics = ChannelStatistics(x, batch: batch, channels: s.bn.channels, spatial: s.bn.spatial)
                means.append(statistics.mean)
                variances.append(statistics.unbiasedVariance)
                let y = s.harness.forward(x, context: ForwardContext(mode: .recalibration(batchIndex: index)))
                // The pass itself normalises with the batch's statistics, as in training.
                assertAllClose(
                    y,
                    normalize(
                        x, channels: s.bn.channels, spatial: s.bn.spatial, mean: statistics.mean,
                        variance: statistics.biasedVariance, gamma: s.gamma, beta: s.beta),
                    relative: 1e-4, absolute: 1e-5, "\(shape) output of batch \(index)")
                // After batch `index`, the running values are the plain average of the batches so far.
                let seen = Double(index + 1)
                assertAllClose(
                    Array(s.mean), (0..<s.bn.channels).map { c in Float(means.map { $0[c] }.reduce(0, +) / seen) },
                    relative: 1e-5, absolute: 1e-5, "\(shape) running_mean after \(index + 1) batches")
                assertAllClose(
                    Array(s.variance),
                    (0..<s.bn.channels).map { c in Float(variances.map { $0[c] }.reduce(0, +) / seen) },
                    relative: 1e-5, absolute: 1e-5, "\(shape) running_var after \(index + 1) batches")
            }
            XCTAssertEqual(s.bn.batchesTracked, 17, "recalibration is not training")
        }
    }

    func testRecalibratedStatisticsDriveInference() {
        // Recalibrate on one batch (running = that batch's statistics), then infer on the same batch:
        // the output equals the training output up to the unbiased/biased variance ratio.
        let batch = 8
        let s = setup(shape: [19], batch: batch, seed: 40)
        let x = input(s.bn, batch: batch, seed: 41)
        _ = s.harness.forward(x, context: ForwardContext(mode: .recalibration(batchIndex: 0)))
        let statistics = ChannelStatistics(x, batch: batch, channels: 19, spatial: 1)
        let y = s.harness.forward(x, context: ForwardContext(mode: .inference))
        assertAllClose(
            y,
            normalize(
                x, channels: 19, spatial: 1, mean: statistics.mean, variance: statistics.unbiasedVariance,
                gamma: s.gamma, beta: s.beta), relative: 1e-4, absolute: 1e-5)
    }

    func testDropoutIsIdentityOutsideTraining() {
        let batch = 4
        let dropout = Dropout(shape: [2, 3, 5], probability: 0.5, streamIndex: 3)
        let harness = LayerHarness(dropout, batch: batch)
        let ids = SampleIDs([1, 2, 3, 4])
        let x = Fixtures.normals(batch * 30, seed: 50)
        // Training drops about half the values.
        let trained = harness.forward(x, context: ids.context(.training, key: 1))
        XCTAssertTrue(trained.contains(0) && trained.contains { $0 != 0 })
        for mode in [ForwardMode.inference, .recalibration(batchIndex: 0), .recalibration(batchIndex: 3)] {
            XCTAssertEqual(harness.forward(x, context: ids.context(mode, key: 1)), x, "\(mode)")
            // No sample ids are needed outside training.
            XCTAssertEqual(harness.forward(x, context: ForwardContext(mode: mode)), x, "\(mode) without ids")
        }
    }

    func testNetworkRecalibrationResetsEveryBatchNorm() {
        // Through the network: recalibrating over two batches gives each BatchNorm layer the
        // average of its two batch means, whatever training left in it.
        let batch = 6
        let network = MLPArchitecture(
            inputFeatures: 6, hiddenWidths: [8, 8], exitsAfter: [1, 2], classes: 4, dropout: 0.2
        ).build()
        network.initialize(seed: 60)
        network.reserve(maxBatch: batch)
        for slot in network.store.bufferSlots { network.store.buffer(slot).update(repeating: 4) }
        let first = network.store.parameterSlots.first { $0.name == "blocks.0.linear.weight" }!
        let w = Array(network.store.parameter(first))
        let b = Array(network.store.parameter(network.store.parameterSlots[1]))
        var batchMeans: [[Double]] = []
        for index in 0..<2 {
            let x = Fixtures.normals(batch * 6, seed: 61 + UInt64(index))
            x.withUnsafeBufferPointer {
                network.forward($0, batch: batch, context: ForwardContext(mode: .recalibration(batchIndex: index)))
            }
            // The first BatchNorm sees the first Linear's output.
            batchMeans.append(
                (0..<8).map { o in
                    (0..<batch).map { n in
                        (0..<6).reduce(Double(b[o])) { $0 + Double(x[n * 6 + $1]) * Double(w[o * 6 + $1]) }
                    }.reduce(0, +) / Double(batch)
                })
        }
        let mean = network.store.buffer(network.store.bufferSlots.first { $0.name == "blocks.0.bn.running_mean" }!)
        assertAllClose(
            Array(mean), (0..<8).map { Float((batchMeans[0][$0] + batchMeans[1][$0]) / 2) }, relative: 1e-5,
            absolute: 1e-5)
        for slot in network.store.bufferSlots {
            XCTAssertFalse(network.store.buffer(slot).contains(4), "\(slot.name) kept a stale value")
        }
    }

    func testSyncBatchNormMatchesOneBatchOverAllRanks() {
        // Rank A's layer sums its statistics with a second rank B through `statisticsReducer`; B's
        // contributions are computed here in Double. Everything rank A sees must equal the first
        // rows of one BatchNorm over the concatenated batch [A; B].
        for (shape, batchA, batchB) in [([19], 4, 3), ([19], 1, 4), ([3, 4, 5], 2, 3)] {
            let seed = UInt64(70 + batchA)
            let reference = setup(shape: shape, batch: batchA + batchB, seed: seed)
            let rankA = setup(shape: shape, batch: batchA, seed: seed)
            let bn = reference.bn
            let channels = bn.channels
            let spatial = bn.spatial
            let x = input(bn, batch: batchA + batchB, seed: seed + 2)
            let dy = Fixtures.normals(x.count, seed: seed + 3)
            let split = batchA * bn.inputCount
            let (xA, xB) = (Array(x[..<split]), Array(x[split...]))
            let dyB = Array(dy[split...])

            // B's sums: of x, of squared deviations from the global mean, of dy * xhat and of dy.
            let global = ChannelStatistics(x, batch: batchA + batchB, channels: channels, spatial: spatial)
            var sumB = [Double](repeating: 0, count: channels)
            var squaresB = sumB
            var dgammaB = sumB
            var dbetaB = sumB
            for k in xB.indices {
                let c = (k / spatial) % channels
                let deviation = Double(xB[k]) - global.mean[c]
                sumB[c] += Double(xB[k])
                squaresB[c] += deviation * deviation
                dgammaB[c] += Double(dyB[k]) * deviation / (global.biasedVariance[c] + 1e-5).squareRoot()
                dbetaB[c] += Double(dyB[k])
            }
            var calls = 0
            rankA.bn.statisticsReducer = { buffer in
                calls += 1
                switch calls {
                case 1:  // channel sums of x, then the count of values per channel
                    XCTAssertEqual(buffer.count, channels + 1)
                    for c in 0..<channels { buffer[c] += Float(sumB[c]) }
                    buffer[channels] += Float(batchB * spatial)
                case 2:  // squared deviations from the global mean
                    XCTAssertEqual(buffer.count, channels)
                    for c in 0..<channels { buffer[c] += Float(squaresB[c]) }
                default:  // the backward pass: sums of dy * xhat, then of dy
                    XCTAssertEqual(buffer.count, 2 * channels)
                    for c in 0..<channels {
                        buffer[c] += Float(dgammaB[c])
                        buffer[channels + c] += Float(dbetaB[c])
                    }
                }
            }

            let context = ForwardContext(mode: .training)
            let y = reference.harness.forward(x, context: context)
            let dx = reference.harness.backward(input: x, output: y, outputGradient: dy)
            let yA = rankA.harness.forward(xA, context: context)
            let dxA = rankA.harness.backward(input: xA, output: yA, outputGradient: Array(dy[..<split]))
            XCTAssertEqual(calls, 3, "\(shape): two reductions forward, one backward")
            assertAllClose(yA, Array(y[..<split]), relative: 1e-4, absolute: 1e-5, "\(shape) output")
            assertAllClose(dxA, Array(dx[..<split]), relative: 1e-4, absolute: 1e-5, "\(shape) input gradient")
            assertAllClose(
                Array(rankA.mean), Array(reference.mean), relative: 1e-5, absolute: 1e-6, "\(shape) running_mean")
            assertAllClose(
                Array(rankA.variance), Array(reference.variance), relative: 1e-5, absolute: 1e-6, "\(shape) running_var"
            )
            // gamma and beta gradients stay local: A's plus B's make the whole batch's.
            let gammaA = Array(rankA.harness.store.gradient(rankA.harness.parameterSlot("weight")))
            let betaA = Array(rankA.harness.store.gradient(rankA.harness.parameterSlot("bias")))
            assertAllClose(
                (0..<channels).map { gammaA[$0] + Float(dgammaB[$0]) },
                Array(reference.harness.store.gradient(reference.harness.parameterSlot("weight"))),
                relative: 1e-4, absolute: 1e-5, "\(shape) gamma gradient")
            assertAllClose(
                (0..<channels).map { betaA[$0] + Float(dbetaB[$0]) },
                Array(reference.harness.store.gradient(reference.harness.parameterSlot("bias"))),
                relative: 1e-4, absolute: 1e-5, "\(shape) beta gradient")
        }
    }
}
