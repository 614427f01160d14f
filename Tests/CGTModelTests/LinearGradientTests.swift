import CGTKernels
import CGTTestSupport
import XCTest

@testable import CGTModel

/// `Linear`: forward against a Double reference, backward against finite differences.
final class LinearGradientTests: XCTestCase {
    // 19 inputs and 17 outputs: one full 16-lane vector and a scalar tail in each direction.
    let inFeatures = 19, outFeatures = 17, batch = 5

    private func makeHarness() -> LayerHarness {
        LayerHarness(Linear(inputFeatures: inFeatures, outputFeatures: outFeatures), batch: batch, seed: 11)
    }

    func testDeclaresWeightAndBiasInPyTorchLayout() {
        let harness = makeHarness()
        XCTAssertEqual(harness.store.parameterSlots.map(\.name), ["layer.weight", "layer.bias"])
        XCTAssertEqual(harness.parameterSlot("weight").shape, [outFeatures, inFeatures])
        XCTAssertEqual(harness.parameterSlot("bias").shape, [outFeatures])
        XCTAssertTrue(harness.store.bufferSlots.isEmpty)
        XCTAssertEqual(harness.store.parameterCount, outFeatures * inFeatures + outFeatures)
    }

    func testForwardIsInputTimesWeightTransposedPlusBias() {
        let harness = makeHarness()
        let x = Fixtures.normals(batch * inFeatures, seed: 1)
        let y = harness.forward(x, context: ForwardContext(mode: .training))
        let w = Array(harness.store.parameter(harness.parameterSlot("weight")))
        let b = Array(harness.store.parameter(harness.parameterSlot("bias")))
        var expected = [Float]()
        for n in 0..<batch {
            for o in 0..<outFeatures {
                var total = Double(b[o])
                for i in 0..<inFeatures { total += Double(x[n * inFeatures + i]) * Double(w[o * inFeatures + i]) }
                expected.append(Float(total))
            }
        }
        assertAllClose(y, expected, relative: 1e-5, absolute: 1e-5)
    }

    func testGradientsMatchFiniteDifferences() {
        makeHarness().assertWeightAndBiasGradients("Linear")
    }

    func testBackwardOverwritesParameterGradients() {
        // Gradients are overwritten, not accumulated: two backward passes give the same values.
        let harness = makeHarness()
        let x = Fixtures.normals(batch * inFeatures, seed: 4)
        let dy = Fixtures.normals(batch * outFeatures, seed: 5)
        _ = harness.gradients(input: x, outputGradient: dy, context: ForwardContext(mode: .training))
        let first = Array(harness.store.gradients)
        _ = harness.gradients(input: x, outputGradient: dy, context: ForwardContext(mode: .training))
        XCTAssertEqual(Array(harness.store.gradients), first)
        // The bias gradient is the column sum of dy, computed here in Double.
        let biasGradient = Array(harness.store.gradient(harness.parameterSlot("bias")))
        let expected = (0..<outFeatures).map { o in
            Float((0..<batch).reduce(0.0) { $0 + Double(dy[$1 * outFeatures + o]) })
        }
        assertAllClose(biasGradient, expected, relative: 1e-5, absolute: 1e-6)
    }

    func testInitializationFollowsPyTorchBounds() {
        let harness = makeHarness()
        let bound = 1 / Float(inFeatures).squareRoot()
        let values = Array(harness.store.parameters)
        XCTAssertTrue(values.allSatisfy { abs($0) <= bound }, "a value exceeds 1/sqrt(in) = \(bound)")
        // Uniform on [-bound, bound]: the extremes of 340 draws come close to the bound.
        XCTAssertGreaterThan(values.map(abs).max()!, 0.9 * bound)
        XCTAssertGreaterThan(Set(values).count, values.count - 2)
    }
}
