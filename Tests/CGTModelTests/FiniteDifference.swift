import CGTKernels
import CGTRandom
import CGTTestSupport
import XCTest

@testable import CGTModel

/// Central finite differences of a scalar loss of Float values, accumulated in Double.
enum FiniteDifference {
    /// d loss / d values[j] for every j: (L(v + h) - L(v - h)) / (v+ - v-), where v+ and v- are
    /// the Float values actually stored (so the rounding of v +- h does not bias the quotient).
    static func gradient(of values: UnsafeMutableBufferPointer<Float>, step h: Float, loss: () -> Double) -> [Double] {
        var result = [Double](repeating: 0, count: values.count)
        for j in values.indices {
            let original = values[j]
            let up = original + h
            let down = original - h
            values[j] = up
            let lossUp = loss()
            values[j] = down
            let lossDown = loss()
            values[j] = original
            result[j] = (lossUp - lossDown) / (Double(up) - Double(down))
        }
        return result
    }

    /// The same for a Swift array (a layer input).
    static func gradient(of values: inout [Float], step h: Float, loss: ([Float]) -> Double) -> [Double] {
        var result = [Double](repeating: 0, count: values.count)
        for j in values.indices {
            let original = values[j]
            let up = original + h
            let down = original - h
            values[j] = up
            let lossUp = loss(values)
            values[j] = down
            let lossDown = loss(values)
            values[j] = original
            result[j] = (lossUp - lossDown) / (Double(up) - Double(down))
        }
        return result
    }
}

/// sum_k weights[k] * values[k], in Double: the scalar loss of the layer gradient checks.
func weightedSum(_ values: [Float], _ weights: [Float]) -> Double {
    precondition(values.count == weights.count, "weightedSum: \(values.count) values, \(weights.count) weights")
    var total = 0.0
    for k in values.indices { total += Double(values[k]) * Double(weights[k]) }
    return total
}

/// Fails unless an analytic gradient matches its finite-difference estimate.
///
/// The error of each entry is |a - n| / max(|a|, |n|, floor) (`maxRelativeError`); the floor is
/// `relativeFloor` times the largest numeric entry, so that entries which are zero up to the
/// Float32 rounding of the forward pass are judged against the scale of the whole gradient.
/// A gradient that is zero everywhere fails too: it would make the comparison vacuous.
func assertGradientMatches(
    _ analytic: [Float], _ numeric: [Double], tolerance: Double = 1e-2, relativeFloor: Double = 1e-2,
    _ name: String, file: StaticString = #filePath, line: UInt = #line
) {
    guard analytic.count == numeric.count else {
        XCTFail("\(name): \(analytic.count) analytic entries, \(numeric.count) numeric", file: file, line: line)
        return
    }
    let scale = numeric.map(abs).max() ?? 0
    guard scale > 1e-4 else {
        XCTFail(
            "\(name): the numeric gradient is zero everywhere (largest entry \(scale)), nothing is checked", file: file,
            line: line)
        return
    }
    let a = analytic.map(Double.init)
    let error = maxRelativeError(a, numeric, floor: relativeFloor * scale)
    if !(error <= tolerance) {
        let worst = a.indices.max { lhs, rhs in
            abs(a[lhs] - numeric[lhs]) < abs(a[rhs] - numeric[rhs])
        }!
        XCTFail(
            "\(name): relative error \(error) > \(tolerance); worst entry \(worst): analytic \(a[worst]), numeric \(numeric[worst])",
            file: file, line: line)
    }
}

/// One layer with its own store, for driving forward and backward by hand.
final class LayerHarness {
    let layer: Layer
    let store: ParameterStore
    let batch: Int

    init(_ layer: Layer, batch: Int, seed: UInt64 = 1) {
        self.layer = layer
        self.batch = batch
        var layout = ParameterLayoutBuilder()
        layer.declare(into: &layout, prefix: "layer")
        store = ParameterStore(layout: layout)
        layer.bind(to: store)
        var generator = SeededGenerator(seed: seed)
        layer.initialize(using: &generator)
        layer.reserve(maxBatch: batch)
    }

    func parameterSlot(_ name: String) -> TensorSlot {
        guard let slot = store.parameterSlots.first(where: { $0.name == "layer.\(name)" }) else {
            fatalError("no parameter layer.\(name) in \(store.parameterSlots.map(\.name))")
        }
        return slot
    }

    func bufferSlot(_ name: String) -> TensorSlot {
        guard let slot = store.bufferSlots.first(where: { $0.name == "layer.\(name)" }) else {
            fatalError("no buffer layer.\(name) in \(store.bufferSlots.map(\.name))")
        }
        return slot
    }

    /// - Parameter batch: the harness's batch unless given (a layer may meet smaller batches).
    func forward(_ input: [Float], batch: Int? = nil, context: ForwardContext) -> [Float] {
        let batch = batch ?? self.batch
        precondition(input.count == batch * layer.inputCount, "harness input has \(input.count) values")
        var output = [Float](repeating: .nan, count: batch * layer.outputCount)
        input.withUnsafeBufferPointer { x in
            output.withUnsafeMutableBufferPointer { y in
                layer.forward(x, into: y, batch: batch, context: context)
            }
        }
        return output
    }

    /// Runs a forward pass in `context` and the backward pass of `outputGradient`; returns the input gradient.
    /// Parameter gradients are then in `store.gradients`.
    func gradients(input: [Float], outputGradient: [Float], batch: Int? = nil, context: ForwardContext) -> [Float] {
        backward(
            input: input, output: forward(input, batch: batch, context: context), outputGradient: outputGradient,
            batch: batch)
    }

    /// The backward pass of the last forward pass (which produced `output` from `input`).
    func backward(input: [Float], output: [Float], outputGradient: [Float], batch: Int? = nil) -> [Float] {
        let batch = batch ?? self.batch
        var inputGradient = [Float](repeating: .nan, count: input.count)
        input.withUnsafeBufferPointer { x in
            output.withUnsafeBufferPointer { y in
                outputGradient.withUnsafeBufferPointer { dy in
                    inputGradient.withUnsafeMutableBufferPointer { dx in
                        layer.backward(input: x, output: y, outputGradient: dy, inputGradient: dx, batch: batch)
                    }
                }
            }
        }
        return inputGradient
    }
}

extension LayerHarness {
    /// Checks dW, db and dx of a layer with a weight and a bias (Linear, Conv2D) against finite
    /// differences of the loss sum(weights * y) at inputs and loss weights drawn from seeds 2 and 3.
    func assertWeightAndBiasGradients(_ label: String, file: StaticString = #filePath, line: UInt = #line) {
        var x = Fixtures.normals(batch * layer.inputCount, seed: 2)
        let weights = Fixtures.normals(batch * layer.outputCount, seed: 3)
        let context = ForwardContext(mode: .training)
        let loss = { (input: [Float]) in weightedSum(self.forward(input, context: context), weights) }

        let inputGradient = gradients(input: x, outputGradient: weights, context: context)
        let weightSlot = parameterSlot("weight")
        let biasSlot = parameterSlot("bias")
        let weightGradient = Array(store.gradient(weightSlot))
        let biasGradient = Array(store.gradient(biasSlot))

        let h: Float = 1e-2
        assertGradientMatches(
            weightGradient, FiniteDifference.gradient(of: store.parameter(weightSlot), step: h) { loss(x) },
            "dW, \(label)", file: file, line: line)
        assertGradientMatches(
            biasGradient, FiniteDifference.gradient(of: store.parameter(biasSlot), step: h) { loss(x) }, "db, \(label)",
            file: file, line: line)
        assertGradientMatches(
            inputGradient, FiniteDifference.gradient(of: &x, step: h, loss: loss), "dx, \(label)", file: file,
            line: line)
    }
}

/// Sample ids that outlive the `ForwardContext` that points at them.
final class SampleIDs {
    let storage: UnsafeMutableBufferPointer<Int64>

    init(_ ids: [Int64]) {
        storage = .allocate(capacity: ids.count)
        _ = storage.initialize(from: ids)
    }

    deinit { storage.deallocate() }

    var buffer: UnsafeBufferPointer<Int64> { UnsafeBufferPointer(storage) }

    func context(_ mode: ForwardMode, key: UInt64) -> ForwardContext {
        ForwardContext(mode: mode, sampleIDs: buffer, randomKey: key)
    }
}
