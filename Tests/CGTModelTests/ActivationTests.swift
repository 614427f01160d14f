import CGTKernels
import CGTRandom
import CGTTestSupport
import XCTest

@testable import CGTModel

/// `ReLU`, `Dropout` and a whole `Sequential` block Linear -> BatchNorm -> ReLU -> Dropout.
final class ActivationTests: XCTestCase {
    // MARK: - ReLU

    /// Values whose magnitude is in [0.2, 1.5] with a random sign: no finite-difference step of
    /// 1e-2 crosses the kink at 0.
    private func valuesAwayFromZero(_ count: Int, seed: UInt64) -> [Float] {
        let magnitudes = Fixtures.uniforms(count, seed: seed, 0.2, 1.5)
        let signs = Fixtures.uniforms(count, seed: seed + 1)
        return zip(magnitudes, signs).map { $1 < 0 ? -$0 : $0 }
    }

    func testReLUForwardIsMaxWithZero() {
        // [2, 3, 3] per sample, batch 3: 54 values, three vectors and a tail.
        let harness = LayerHarness(ReLU(shape: [2, 3, 3]), batch: 3)
        XCTAssertEqual(harness.layer.inferenceFLOPs, 18)
        let x = Fixtures.normals(54, seed: 1)
        XCTAssertEqual(harness.forward(x, context: ForwardContext(mode: .training)), x.map { $0 > 0 ? $0 : 0 })
        XCTAssertTrue(harness.store.parameterSlots.isEmpty && harness.store.bufferSlots.isEmpty)
    }

    func testReLUGradientMatchesFiniteDifferences() {
        let harness = LayerHarness(ReLU(shape: [2, 3, 3]), batch: 3)
        var x = valuesAwayFromZero(54, seed: 2)
        XCTAssertTrue(x.contains { $0 > 0 } && x.contains { $0 < 0 })
        let weights = Fixtures.normals(54, seed: 3)
        let context = ForwardContext(mode: .training)
        let analytic = harness.gradients(input: x, outputGradient: weights, context: context)
        // Exactly dy where x > 0 and 0 elsewhere.
        XCTAssertEqual(analytic, zip(x, weights).map { $0 > 0 ? $1 : 0 })
        let numeric = FiniteDifference.gradient(of: &x, step: 1e-2) {
            weightedSum(harness.forward($0, context: context), weights)
        }
        assertGradientMatches(analytic, numeric, "ReLU dx")
    }

    // MARK: - Dropout

    private let dropoutShape = [37]  // two vectors and a 5-value tail per sample

    func testDropoutKeepsOrDropsEachValueWithTheInvertedScale() {
        let p: Float = 0.3
        let batch = 64
        let harness = LayerHarness(Dropout(shape: dropoutShape, probability: p, streamIndex: 2), batch: batch)
        XCTAssertEqual(harness.layer.inferenceFLOPs, 0)
        let ids = SampleIDs((0..<Int64(batch)).map { 1000 + 3 * $0 })
        let x = valuesAwayFromZero(batch * 37, seed: 4)
        let y = harness.forward(x, context: ids.context(.training, key: 99))
        var dropped = 0
        for k in x.indices {
            if y[k] == 0 {
                dropped += 1
            } else {
                assertClose(
                    y[k], x[k] / (1 - p), relative: 1e-6, absolute: 0,
                    "value \(k) is neither dropped nor scaled by 1/(1-p)")
            }
        }
        // 2368 Bernoulli(0.3) draws: the standard deviation of the dropped fraction is 0.0094.
        let fraction = Double(dropped) / Double(x.count)
        XCTAssertEqual(fraction, 0.3, accuracy: 0.04, "dropped fraction \(fraction)")
    }

    func testDropoutMaskIsAFunctionOfKeyStreamAndSampleID() {
        let batch = 8
        let ids: [Int64] = [5, 17, 2, 40, 41, 9, 100, 3]
        let x = valuesAwayFromZero(batch * 37, seed: 5)
        let sampleIDs = SampleIDs(ids)
        func output(stream: UInt64, key: UInt64, ids: SampleIDs, input: [Float]) -> [Float] {
            LayerHarness(Dropout(shape: dropoutShape, probability: 0.5, streamIndex: stream), batch: batch)
                .forward(input, context: ids.context(.training, key: key))
        }
        let reference = output(stream: 0, key: 7, ids: sampleIDs, input: x)
        XCTAssertEqual(output(stream: 0, key: 7, ids: sampleIDs, input: x), reference, "same key, same mask")
        XCTAssertNotEqual(output(stream: 0, key: 8, ids: sampleIDs, input: x), reference, "another key, another mask")
        XCTAssertNotEqual(output(stream: 1, key: 7, ids: sampleIDs, input: x), reference, "another layer, another mask")

        // Reversing the batch reverses the rows of the output: the mask follows the sample, not its position.
        let reversedIDs = SampleIDs(ids.reversed())
        let reversedInput = (0..<batch).reversed().flatMap { Array(x[($0 * 37)..<($0 * 37 + 37)]) }
        let reversedOutput = output(stream: 0, key: 7, ids: reversedIDs, input: reversedInput)
        let expected = (0..<batch).reversed().flatMap { Array(reference[($0 * 37)..<($0 * 37 + 37)]) }
        XCTAssertEqual(reversedOutput, expected)
    }

    func testDropoutGradientMatchesFiniteDifferences() {
        let batch = 4
        let harness = LayerHarness(Dropout(shape: dropoutShape, probability: 0.25, streamIndex: 1), batch: batch)
        let ids = SampleIDs([11, 12, 13, 14])
        let context = ids.context(.training, key: 0xC0FFEE)
        var x = Fixtures.normals(batch * 37, seed: 6)
        let weights = Fixtures.normals(batch * 37, seed: 7)
        let analytic = harness.gradients(input: x, outputGradient: weights, context: context)
        XCTAssertTrue(
            analytic.contains(0) && analytic.contains { $0 != 0 }, "the mask should drop some values and keep others")
        let numeric = FiniteDifference.gradient(of: &x, step: 1e-2) {
            weightedSum(harness.forward($0, context: context), weights)
        }
        assertGradientMatches(analytic, numeric, "dropout dx")
    }

    func testDropoutWithZeroProbabilityIsIdentityInTraining() {
        let harness = LayerHarness(Dropout(shape: dropoutShape, probability: 0, streamIndex: 0), batch: 2)
        let ids = SampleIDs([1, 2])
        let x = Fixtures.normals(74, seed: 8)
        let context = ids.context(.training, key: 3)
        XCTAssertEqual(harness.forward(x, context: context), x)
        let dy = Fixtures.normals(74, seed: 9)
        XCTAssertEqual(harness.gradients(input: x, outputGradient: dy, context: context), dy)
    }

    // MARK: - Sequential block

    /// A block as `MLPArchitecture` builds it, with its own store.
    private final class Block {
        let sequential: Sequential
        let store: ParameterStore
        let batch: Int

        init(inputs: Int, width: Int, dropout: Float, batch: Int) {
            sequential = Sequential(
                prefix: "blocks.0",
                layers: [
                    Linear(inputFeatures: inputs, outputFeatures: width),
                    BatchNorm(shape: [width]),
                    ReLU(shape: [width]),
                    Dropout(shape: [width], probability: dropout, streamIndex: 0),
                ])
            var layout = ParameterLayoutBuilder()
            sequential.declare(into: &layout)
            store = ParameterStore(layout: layout)
            sequential.bind(to: store)
            var generator = SeededGenerator(seed: 21)
            sequential.initialize(using: &generator)
            sequential.reserve(maxBatch: batch)
            self.batch = batch
        }

        func slot(_ name: String) -> TensorSlot { store.parameterSlots.first { $0.name == "blocks.0.\(name)" }! }

        func forward(_ x: [Float], context: ForwardContext) -> [Float] {
            x.withUnsafeBufferPointer { sequential.forward($0, batch: batch, context: context) }
            return Array(sequential.output(batch: batch))
        }

        /// The input gradient of `dy`; parameter gradients land in `store.gradients`.
        func backward(_ x: [Float], outputGradient dy: [Float]) -> [Float] {
            _ = sequential.outputGradient(batch: batch).update(from: dy)
            var dx = [Float](repeating: .nan, count: x.count)
            x.withUnsafeBufferPointer { input in
                dx.withUnsafeMutableBufferPointer { sequential.backward(input: input, inputGradient: $0, batch: batch) }
            }
            return dx
        }

        /// The BatchNorm output (the ReLU input) in Double, from the store's parameters and batch statistics.
        func preActivations(_ x: [Float]) -> [Double] {
            let w = store.parameter(slot("linear.weight"))
            let b = store.parameter(slot("linear.bias"))
            let gamma = store.parameter(slot("bn.weight"))
            let beta = store.parameter(slot("bn.bias"))
            let inputs = x.count / batch
            let width = b.count
            var a = [Double](repeating: 0, count: batch * width)
            for n in 0..<batch {
                for o in 0..<width {
                    var total = Double(b[o])
                    for i in 0..<inputs { total += Double(x[n * inputs + i]) * Double(w[o * inputs + i]) }
                    a[n * width + o] = total
                }
            }
            var z = a
            for o in 0..<width {
                let column = (0..<batch).map { a[$0 * width + o] }
                let mean = column.reduce(0, +) / Double(batch)
                let variance = column.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(batch)
                for n in 0..<batch {
                    z[n * width + o] =
                        (a[n * width + o] - mean) / (variance + 1e-5).squareRoot() * Double(gamma[o]) + Double(beta[o])
                }
            }
            return z
        }
    }

    func testBlockForwardMatchesDoubleReference() {
        let p: Float = 0.3
        let block = Block(inputs: 6, width: 19, dropout: p, batch: 8)
        let ids = SampleIDs([10, 11, 12, 13, 14, 15, 16, 17])
        let x = Fixtures.normals(48, seed: 30)
        let y = block.forward(x, context: ids.context(.training, key: 5))
        let z = block.preActivations(x)
        var kept = 0
        for k in y.indices where y[k] != 0 {
            kept += 1
            assertClose(y[k], Float(max(z[k], 0)) / (1 - p), relative: 1e-4, absolute: 1e-5, "value \(k)")
        }
        // About half the pre-activations are positive and 70% of those are kept.
        XCTAssertGreaterThan(kept, 20)
    }

    func testBlockGradientsMatchFiniteDifferences() {
        let batch = 8
        let block = Block(inputs: 6, width: 19, dropout: 0.3, batch: batch)
        _ = block.store.parameter(block.slot("bn.weight")).update(from: Fixtures.uniforms(19, seed: 40, 0.5, 1.5))
        _ = block.store.parameter(block.slot("bn.bias")).update(from: Fixtures.normals(19, seed: 41, scale: 0.5))
        let ids = SampleIDs([3, 1, 4, 1_000_000, 5, 9, 2, 6])
        let context = ids.context(.training, key: 0xDEAD_BEEF)
        // The loss sums 152 Float outputs, so it carries a rounding noise of about 1e-6: the step is
        // as large as the ReLU kink allows.
        let h: Float = 5e-3
        // The first input whose ReLU inputs all lie at least 3 h from the kink.
        var chosen: [Float]?
        for seed in UInt64(50)..<UInt64(250) {
            let candidate = Fixtures.normals(batch * 6, seed: seed)
            if block.preActivations(candidate).map(abs).min()! > Double(3 * h) {
                chosen = candidate
                break
            }
        }
        guard var x = chosen else { return XCTFail("no input keeps the ReLU inputs away from 0") }
        let weights = Fixtures.normals(batch * 19, seed: 42)
        // Every evaluation also checks that no ReLU input changed sign, which would invalidate the difference.
        let pattern = block.preActivations(x).map { $0 > 0 }
        var crossings = 0
        let loss = { (input: [Float]) -> Double in
            if block.preActivations(input).map({ $0 > 0 }) != pattern { crossings += 1 }
            return weightedSum(block.forward(input, context: context), weights)
        }

        _ = block.forward(x, context: context)
        let inputGradient = block.backward(x, outputGradient: weights)
        let analytic = Array(block.store.gradients)
        let numeric = FiniteDifference.gradient(of: block.store.parameters, step: h) { loss(x) }
        assertGradientMatches(analytic, numeric, "block parameters")
        for name in ["linear.weight", "bn.weight", "bn.bias"] {
            let slot = block.slot(name)
            let range = slot.offset..<(slot.offset + slot.count)
            assertGradientMatches(Array(analytic[range]), Array(numeric[range]), name)
        }
        // BatchNorm removes any shift of its input, so the Linear bias has no effect on the loss:
        // its gradient is zero up to rounding, analytically and numerically.
        let bias = block.slot("linear.bias")
        let scale = numeric.map(abs).max()!
        for k in bias.offset..<(bias.offset + bias.count) {
            XCTAssertLessThan(abs(Double(analytic[k])), 1e-4 * scale, "linear.bias gradient \(k - bias.offset)")
            XCTAssertLessThan(abs(numeric[k]), 1e-2 * scale, "linear.bias numeric gradient \(k - bias.offset)")
        }
        assertGradientMatches(inputGradient, FiniteDifference.gradient(of: &x, step: h, loss: loss), "block dx")
        XCTAssertEqual(crossings, 0, "a finite-difference step moved a ReLU input across 0")
    }
}
