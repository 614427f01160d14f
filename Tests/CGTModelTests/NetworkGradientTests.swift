import CGTKernels
import CGTRandom
import CGTTestSupport
import Foundation
import XCTest

@testable import CGTModel

/// Softmax of each row of `[rows, classes]` logits, in Double.
func referenceSoftmax(_ logits: [Float], classes: Int) -> [[Double]] {
    stride(from: 0, to: logits.count, by: classes).map { start in
        let row = logits[start..<(start + classes)].map(Double.init)
        let top = row.max()!
        let exps = row.map { Foundation.exp($0 - top) }
        let total = exps.reduce(0, +)
        return exps.map { $0 / total }
    }
}

/// The index of the largest entry (the first of equal ones).
func argmax(_ values: [Double]) -> Int {
    values.indices.max { values[$0] < values[$1] || (values[$0] == values[$1] && $0 > $1) }!
}

/// -log softmax(row)[label], in Double.
func referenceCrossEntropy(_ logits: ArraySlice<Float>, label: Int) -> Double {
    let row = logits.map(Double.init)
    let top = row.max()!
    return Foundation.log(row.map { Foundation.exp($0 - top) }.reduce(0, +)) + top - row[label]
}

/// The small network of the gradient checks, its batch and its sample ids.
final class GradientFixture {
    let network: EarlyExitNetwork
    let objective: ExitObjective
    let batch: Int
    let ids: SampleIDs
    let context: ForwardContext
    var input: [Float] = []
    var labels: [Int32] = []

    init(
        dropout: Float, hiddenWidths: [Int] = [8, 8, 8], exitsAfter: [Int] = [1, 2, 3], batch: Int = 8, seed: UInt64 = 3
    ) {
        network = MLPArchitecture(
            inputFeatures: 6, hiddenWidths: hiddenWidths, exitsAfter: exitsAfter, classes: 4,
            batchNorm: true, dropout: dropout
        ).build()
        network.initialize(seed: seed)
        network.reserve(maxBatch: batch)
        objective = ExitObjective(exits: exitsAfter.count, classes: 4)
        objective.reserve(maxBatch: batch)
        self.batch = batch
        ids = SampleIDs((0..<Int64(batch)).map { 7 * $0 + 1 })
        context = ids.context(.training, key: 0x5EED)
        // BatchNorm away from gamma = 1, beta = 0.
        var generator = SeededGenerator(seed: seed + 100)
        for slot in network.store.parameterSlots where slot.name.contains(".bn.") {
            let values = network.store.parameter(slot)
            for k in values.indices {
                values[k] = slot.name.hasSuffix("weight") ? generator.uniform(0.6, 1.4) : generator.uniform(-0.3, 0.3)
            }
        }
    }

    func slot(_ name: String) -> TensorSlot { network.store.parameterSlots.first { $0.name == name }! }

    func forward(_ x: [Float]) {
        x.withUnsafeBufferPointer { network.forward($0, batch: batch, context: context) }
    }

    func logits(_ e: Int) -> [Float] { Array(network.logits(exit: e, batch: batch)) }

    /// The ReLU inputs of every block after a forward pass of `x`, in Double: Linear and
    /// BatchNorm with batch statistics applied to each block's input as the network saw it.
    func preActivations(_ x: [Float]) -> [Double] {
        forward(x)
        var result: [Double] = []
        for b in network.blocks.indices {
            let blockInput = b == 0 ? x : Array(network.blocks[b - 1].output(batch: batch))
            let w = network.store.parameter(slot("blocks.\(b).linear.weight"))
            let bias = network.store.parameter(slot("blocks.\(b).linear.bias"))
            let gamma = network.store.parameter(slot("blocks.\(b).bn.weight"))
            let beta = network.store.parameter(slot("blocks.\(b).bn.bias"))
            let width = bias.count
            let inputs = blockInput.count / batch
            for o in 0..<width {
                let column = (0..<batch).map { n in
                    (0..<inputs).reduce(Double(bias[o])) {
                        $0 + Double(blockInput[n * inputs + $1]) * Double(w[o * inputs + $1])
                    }
                }
                let mean = column.reduce(0, +) / Double(batch)
                let variance = column.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(batch)
                result += column.map {
                    ($0 - mean) / (variance + 1e-5).squareRoot() * Double(gamma[o]) + Double(beta[o])
                }
            }
        }
        return result
    }

    /// (1/N) sum_i sum_e lambda[e * batch + i] CE_e(i) of a forward pass, CE in Double.
    func frozenLoss(lambda: [Float], globalBatch: Int) -> Double {
        forward(input)
        var total = 0.0
        for e in 0..<network.exitCount {
            let z = logits(e)
            for i in 0..<batch {
                total +=
                    Double(lambda[e * batch + i])
                    * referenceCrossEntropy(z[(i * 4)..<(i * 4 + 4)], label: Int(labels[i]))
            }
        }
        return total / Double(globalBatch)
    }

    /// Forward, `evaluate` and backward: the statistics and the store's gradients.
    func analyticGradient(
        weighting: ExitWeighting, globalBatch: Int,
        adjustment: ExitObjective.WeightAdjustment = ExitObjective.WeightAdjustment(), gradientEquilibrium: Bool = false
    ) -> (ExitObjective.Statistics, [Float]) {
        forward(input)
        let statistics = labels.withUnsafeBufferPointer {
            objective.lossAndGradients(
                network: network, labels: $0, batch: batch, weighting: weighting, globalBatch: globalBatch,
                adjustment: adjustment)
        }
        input.withUnsafeBufferPointer {
            network.backward(input: $0, batch: batch, gradientEquilibrium: gradientEquilibrium)
        }
        return (statistics, Array(network.store.gradients))
    }
}

/// The gated loss of Eq. 2 with the gates frozen: the gradient of `ExitObjective` and
/// `EarlyExitNetwork.backward` against finite differences of the loss computed here.
final class NetworkGradientTests: XCTestCase {
    /// The gates of one weighting at an input: the `ExitWeighting` under test and lambda_e(i) computed here.
    typealias Gates = (weighting: ExitWeighting, lambda: [Float])

    /// Runs the gradient check on the first input for which it is valid: every ReLU input at least
    /// 3 h from 0 and no finite-difference step moving one across 0, and `gates` accepts it (it
    /// returns nil when, say, a confidence is too close to tau for a Float comparison).
    ///
    /// Labels make exit 0 right on the even samples and exit 1 on the odd ones; `gates` receives
    /// the softmax of each exit, `[exit][sample][class]`, in Double.
    private func checkGradient(
        _ fixture: GradientFixture, h: Float = 5e-3, gates: ([[[Double]]]) -> Gates?,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        let batch = fixture.batch
        let exits = fixture.network.exitCount
        for seed in UInt64(1000)..<UInt64(2000) {
            let candidate = Fixtures.normals(batch * 6, seed: seed)
            guard fixture.preActivations(candidate).map(abs).min()! > Double(3 * h) else { continue }
            fixture.input = candidate
            fixture.forward(candidate)
            let probabilities = (0..<exits).map { referenceSoftmax(fixture.logits($0), classes: 4) }
            fixture.labels = (0..<batch).map { i in Int32(argmax(probabilities[i % 2][i])) }
            guard let (weighting, lambda) = gates(probabilities) else { continue }

            let pattern = fixture.preActivations(candidate).map { $0 > 0 }
            var crossings = 0
            let numeric = FiniteDifference.gradient(of: fixture.network.store.parameters, step: h) {
                if fixture.preActivations(fixture.input).map({ $0 > 0 }) != pattern { crossings += 1 }
                return fixture.frozenLoss(lambda: lambda, globalBatch: batch)
            }
            guard crossings == 0 else { continue }

            let (statistics, analytic) = fixture.analyticGradient(weighting: weighting, globalBatch: batch)
            // The gates `evaluate` used are the ones computed here.
            assertAllClose(
                Array(fixture.objective.lastGates(batch: batch)), lambda, relative: 1e-5, absolute: 1e-6,
                "\(weighting.name) gates", file: file, line: line)
            // Statistics: sums over the batch of CE, lambda * CE, lambda and correct predictions.
            for e in 0..<exits {
                let ce = (0..<batch).map { -Foundation.log(probabilities[e][$0][Int(fixture.labels[$0])]) }
                let gates = (0..<batch).map { Double(lambda[e * batch + $0]) }
                let correct = (0..<batch).filter { argmax(probabilities[e][$0]) == Int(fixture.labels[$0]) }.count
                XCTAssertEqual(
                    statistics.loss[e], ce.reduce(0, +), accuracy: 1e-4, "loss of exit \(e)", file: file, line: line)
                XCTAssertEqual(
                    statistics.weightedLoss[e], zip(ce, gates).map(*).reduce(0, +), accuracy: 1e-4,
                    "weighted loss of exit \(e)", file: file, line: line)
                XCTAssertEqual(
                    statistics.gate[e], gates.reduce(0, +), accuracy: 1e-5, "gate sum of exit \(e)", file: file,
                    line: line)
                XCTAssertEqual(statistics.correct[e], Double(correct), "correct at exit \(e)", file: file, line: line)
            }
            assertGradientMatches(analytic, numeric, "\(weighting.name) network gradient", file: file, line: line)
            // Each tensor separately, so that a small head cannot hide behind a large block. The
            // Linear biases of the blocks are left to the whole-vector check: BatchNorm cancels them,
            // so their gradient is zero up to rounding.
            for slot in fixture.network.store.parameterSlots
            where !(slot.name.hasPrefix("blocks") && slot.name.hasSuffix("linear.bias")) {
                let range = slot.offset..<(slot.offset + slot.count)
                assertGradientMatches(
                    Array(analytic[range]), Array(numeric[range]), relativeFloor: 3e-2,
                    "\(weighting.name) \(slot.name)", file: file, line: line)
            }
            return
        }
        XCTFail("no input gave a valid finite-difference check", file: file, line: line)
    }

    func testHardCGTGradient() {
        for dropout: Float in [0.2, 0] {
            let fixture = GradientFixture(dropout: dropout)
            checkGradient(fixture) { probabilities in
                let batch = fixture.batch
                // tau halfway between the 2nd and 3rd smallest confidences of the samples exit 0 gets
                // right: two of them pass the gate (their deeper exits get lambda = 0), two do not.
                let confident = (0..<batch).filter { $0 % 2 == 0 }.map { probabilities[0][$0].max()! }.sorted()
                let tau = (confident[1] + confident[2]) / 2
                // Eq. 3-5: delta_e = [argmax = y and s_e >= tau]; lambda_e = prod_{e' < e} (1 - delta_e').
                var lambda = [Float](repeating: 1, count: 3 * batch)
                for i in 0..<batch {
                    for e in 1..<3 {
                        let p = probabilities[e - 1][i]
                        // Float and Double softmaxes must agree on which side of tau s lies.
                        guard abs(p.max()! - tau) > 1e-5 else { return nil }
                        let success = argmax(p) == Int(fixture.labels[i]) && p.max()! >= tau
                        lambda[e * batch + i] = success ? 0 : lambda[(e - 1) * batch + i]
                    }
                }
                XCTAssertTrue(
                    lambda.contains(0) && lambda[batch...].contains(1),
                    "the gates should block some samples and pass others")
                return (HardCGT(tau: Float(tau)), lambda)
            }
        }
    }

    func testSoftCGTGradient() {
        for (dropout, score) in [
            (Float(0.2), SoftCGT.Score.maxProbability), (0, .maxProbability), (0.2, .trueClassProbability),
        ] {
            let fixture = GradientFixture(dropout: dropout)
            checkGradient(fixture) { probabilities in
                let batch = fixture.batch
                let tau = 0.4
                let k = 6.0
                // Eq. 6-7 with sharpness k: r_e = 1 - sigmoid(k (s_e - tau)), lambda_e = prod_{e' < e} r_e'.
                var exact = [Double](repeating: 1, count: 3 * batch)
                for i in 0..<batch {
                    for e in 1..<3 {
                        let p = probabilities[e - 1][i]
                        let s = score == .maxProbability ? p.max()! : p[Int(fixture.labels[i])]
                        exact[e * batch + i] =
                            exact[(e - 1) * batch + i] * (1 - 1 / (1 + Foundation.exp(-k * (s - tau))))
                    }
                }
                return (SoftCGT(tau: Float(tau), sharpness: Float(k), score: score), exact.map(Float.init))
            }
        }
    }

    func testFixedExitWeightsGradient() {
        let fixture = GradientFixture(dropout: 0.2)
        checkGradient(fixture) { _ in
            let lambdas: [Float] = [0.5, 0.3, 0.2]
            return (FixedExitWeights(lambdas), lambdas.flatMap { Array(repeating: $0, count: fixture.batch) })
        }
    }

    func testGradientThroughBlocksWithoutHeads() {
        // Four blocks of different widths, exits after blocks 2 and 4 only: blocks 0 and 2 get
        // their gradient from the next block alone.
        let fixture = GradientFixture(dropout: 0.2, hiddenWidths: [8, 7, 9, 5], exitsAfter: [2, 4])
        checkGradient(fixture) { probabilities in
            let batch = fixture.batch
            let tau = 0.35
            let k = 4.0
            var lambda = [Float](repeating: 1, count: batch)
            for i in 0..<batch {
                let s = probabilities[0][i].max()!
                lambda.append(Float(1 - 1 / (1 + Foundation.exp(-k * (s - tau)))))
            }
            return (SoftCGT(tau: Float(tau), sharpness: Float(k)), lambda)
        }
    }

    func testStatisticsAddAndFlatten() {
        var a = ExitObjective.Statistics(exits: 2)
        XCTAssertEqual(a.flattened, [0, 0, 0, 0, 0, 0, 0, 0])
        a.loss = [1, 2]
        a.weightedLoss = [3, 4]
        a.gate = [5, 6]
        a.correct = [7, 8]
        XCTAssertEqual(a.flattened, [1, 2, 3, 4, 5, 6, 7, 8])
        XCTAssertEqual(ExitObjective.Statistics(flattened: a.flattened), a)
        var b = ExitObjective.Statistics(flattened: [10, 20, 30, 40, 50, 60, 70, 80])
        b += a
        XCTAssertEqual(b.loss, [11, 22])
        XCTAssertEqual(b.weightedLoss, [33, 44])
        XCTAssertEqual(b.gate, [55, 66])
        XCTAssertEqual(b.correct, [77, 88])
    }

    func testGlobalBatchDividesTheGradient() {
        // N of Eq. 2 is the global batch: with twice as many samples over all ranks, this
        // rank's gradient is exactly half (a power-of-two scale is exact in floating point).
        let fixture = GradientFixture(dropout: 0.2)
        fixture.input = Fixtures.normals(fixture.batch * 6, seed: 77)
        fixture.labels = Fixtures.labels(fixture.batch, classes: 4, seed: 78)
        for weighting: ExitWeighting in [HardCGT(tau: 0.3), SoftCGT(tau: 0.5), FixedExitWeights([1, 0.5, 0.25])] {
            let (localStatistics, local) = fixture.analyticGradient(weighting: weighting, globalBatch: fixture.batch)
            let (globalStatistics, global) = fixture.analyticGradient(
                weighting: weighting, globalBatch: 2 * fixture.batch)
            XCTAssertTrue(local.contains { $0 != 0 })
            XCTAssertEqual(global.map { 2 * $0 }, local, weighting.name)
            // The statistics are sums over the local batch and do not depend on N.
            XCTAssertEqual(globalStatistics, localStatistics, weighting.name)
        }
    }

    func testFrozenGatesReproduceTheWeightingGradient() {
        // Feeding the gates of a pass back as a frozen table gives the same gradient bit for bit:
        // `evaluate` treats the gates as constants.
        let fixture = GradientFixture(dropout: 0.2)
        fixture.input = Fixtures.normals(fixture.batch * 6, seed: 79)
        fixture.labels = Fixtures.labels(fixture.batch, classes: 4, seed: 80)
        let (_, soft) = fixture.analyticGradient(weighting: SoftCGT(tau: 0.4, sharpness: 3), globalBatch: fixture.batch)
        let gates = Array(fixture.objective.lastGates(batch: fixture.batch))
        let (_, frozen) = fixture.analyticGradient(
            weighting: ExitWeightTable(gates), globalBatch: fixture.batch)
        XCTAssertEqual(frozen, soft)
    }

    func testExitScaleMultipliesTheGates() {
        let fixture = GradientFixture(dropout: 0)
        fixture.input = Fixtures.normals(fixture.batch * 6, seed: 81)
        fixture.labels = Fixtures.labels(fixture.batch, classes: 4, seed: 82)
        let b = fixture.batch
        _ = fixture.analyticGradient(weighting: SoftCGT(tau: 0.5), globalBatch: b)
        let unscaled = Array(fixture.objective.lastGates(batch: b))
        let (statistics, gradient) = fixture.analyticGradient(
            weighting: SoftCGT(tau: 0.5), globalBatch: b, adjustment: .init(exitScale: [1, 0, 2]))
        let scaled = Array(fixture.objective.lastGates(batch: b))
        XCTAssertEqual(Array(scaled[0..<b]), Array(unscaled[0..<b]))
        XCTAssertEqual(Array(scaled[b..<(2 * b)]), Array(repeating: 0, count: b))
        XCTAssertEqual(Array(scaled[(2 * b)...]), unscaled[(2 * b)...].map { 2 * $0 })
        XCTAssertEqual(statistics.gate[1], 0)
        XCTAssertEqual(statistics.weightedLoss[1], 0)
        XCTAssertGreaterThan(statistics.loss[1], 0, "the unweighted loss is still reported")
        // Exit 1 is switched off: its head learns nothing.
        for name in ["exits.1.linear.weight", "exits.1.linear.bias"] {
            let slot = fixture.slot(name)
            XCTAssertTrue(gradient[slot.offset..<(slot.offset + slot.count)].allSatisfy { $0 == 0 }, name)
        }
        let head2 = fixture.slot("exits.2.linear.weight")
        XCTAssertTrue(gradient[head2.offset..<(head2.offset + head2.count)].contains { $0 != 0 })
    }

    /// Leak and per-sample normalisation, computed here from the plain gates, are the weights
    /// the loss and the backward pass use; an exit switched off stays off.
    func testLeakAndNormalisationShapeTheWeights() {
        let fixture = GradientFixture(dropout: 0)
        fixture.input = Fixtures.normals(fixture.batch * 6, seed: 83)
        fixture.labels = Fixtures.labels(fixture.batch, classes: 4, seed: 84)
        let b = fixture.batch
        let scale: [Float] = [1, 0, 2]
        let leak: Float = 0.05
        _ = fixture.analyticGradient(weighting: SoftCGT(tau: 0.5), globalBatch: b)
        let plain = Array(fixture.objective.lastGates(batch: b))
        var expected = [Float](repeating: 0, count: 3 * b)
        for i in 0..<b {
            let raw = (0..<3).map { e in scale[e] == 0 ? 0 : Double(plain[e * b + i]) * Double(scale[e]) + Double(leak)
            }
            let sum = raw.reduce(0, +)
            for e in 0..<3 { expected[e * b + i] = Float(raw[e] / sum) }
        }
        let (statistics, gradient) = fixture.analyticGradient(
            weighting: SoftCGT(tau: 0.5), globalBatch: b,
            adjustment: .init(exitScale: scale, leak: leak, normalized: true))
        let adjusted = Array(fixture.objective.lastGates(batch: b))
        for k in 0..<(3 * b) { XCTAssertEqual(adjusted[k], expected[k], accuracy: 1e-6, "weight \(k)") }
        XCTAssertEqual(statistics.gate[1], 0, "a switched-off exit gets no leak")
        for i in 0..<b { XCTAssertEqual(adjusted[i] + adjusted[b + i] + adjusted[2 * b + i], 1, accuracy: 1e-6) }
        let (_, frozen) = fixture.analyticGradient(weighting: ExitWeightTable(adjusted), globalBatch: b)
        XCTAssertEqual(gradient, frozen, "the backward pass uses the adjusted weights")
    }

    /// `method.spread`: each exit's gates become 1 + spread (gate - its mean over the batch),
    /// clamped at 0, before the other adjustments; the first exit (gate 1 everywhere) stays at 1,
    /// and the backward pass uses the spread weights.
    func testSpreadMovesTheWeightsAroundOne() {
        let fixture = GradientFixture(dropout: 0)
        fixture.input = Fixtures.normals(fixture.batch * 6, seed: 85)
        fixture.labels = Fixtures.labels(fixture.batch, classes: 4, seed: 86)
        let b = fixture.batch
        _ = fixture.analyticGradient(weighting: SoftCGT(tau: 0.5, sharpness: 20), globalBatch: b)
        let plain = Array(fixture.objective.lastGates(batch: b))
        for spread: Float in [0.8, 4] {
            var expected = [Float](repeating: 0, count: 3 * b)
            for e in 0..<3 {
                let mean = (0..<b).map { Double(plain[e * b + $0]) }.reduce(0, +) / Double(b)
                for i in 0..<b {
                    expected[e * b + i] = Float(max(0, 1 + Double(spread) * (Double(plain[e * b + i]) - mean)))
                }
            }
            let (_, gradient) = fixture.analyticGradient(
                weighting: SoftCGT(tau: 0.5, sharpness: 20), globalBatch: b, adjustment: .init(spread: spread))
            let spreadWeights = Array(fixture.objective.lastGates(batch: b))
            for k in 0..<(3 * b) { XCTAssertEqual(spreadWeights[k], expected[k], accuracy: 1e-5, "weight \(k)") }
            XCTAssertTrue(spreadWeights[0..<b].allSatisfy { $0 == 1 }, "exit 1's gate is 1 on every sample")
            XCTAssertGreaterThan(
                Set(spreadWeights[(2 * b)...]).count, 1, "a sharp gate varies over the samples, so does the weight")
            let (_, frozen) = fixture.analyticGradient(
                weighting: ExitWeightTable(spreadWeights), globalBatch: b)
            XCTAssertEqual(gradient, frozen, "the backward pass uses the spread weights")
        }
    }
}
