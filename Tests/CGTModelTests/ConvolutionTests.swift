import CGTKernels
import CGTTestSupport
import XCTest

@testable import CGTModel

/// `Conv2D`: forward against direct convolution loops in Double, backward against finite differences.
final class ConvolutionTests: XCTestCase {
    // Odd sizes everywhere, channel counts that fill no 16-channel block of oneDNN's layouts.
    let inChannels = 3, outChannels = 5, height = 7, width = 9, batch = 3

    private func makeHarness(kernelSize: Int = 3, seed: UInt64 = 11) -> LayerHarness {
        LayerHarness(
            Conv2D(inputShape: [inChannels, height, width], outputChannels: outChannels, kernelSize: kernelSize),
            batch: batch, seed: seed)
    }

    /// y[n, o, y, x] = b[o] + sum_{c, i, j} w[o, c, i, j] x[n, c, y + i - k/2, x + j - k/2], zero outside.
    private func directConvolution(_ x: [Float], weight: [Float], bias: [Float], kernelSize k: Int) -> [Float] {
        var y: [Float] = []
        for n in 0..<batch {
            for o in 0..<outChannels {
                for oy in 0..<height {
                    for ox in 0..<width {
                        var total = Double(bias[o])
                        for c in 0..<inChannels {
                            for i in 0..<k {
                                for j in 0..<k {
                                    let iy = oy + i - k / 2
                                    let ix = ox + j - k / 2
                                    guard iy >= 0 && iy < height && ix >= 0 && ix < width else { continue }
                                    total +=
                                        Double(weight[((o * inChannels + c) * k + i) * k + j])
                                        * Double(x[((n * inChannels + c) * height + iy) * width + ix])
                                }
                            }
                        }
                        y.append(Float(total))
                    }
                }
            }
        }
        return y
    }

    func testDeclaresWeightAndBiasInPyTorchLayout() {
        let harness = makeHarness()
        XCTAssertEqual(harness.store.parameterSlots.map(\.name), ["layer.weight", "layer.bias"])
        XCTAssertEqual(harness.parameterSlot("weight").shape, [outChannels, inChannels, 3, 3])
        XCTAssertEqual(harness.parameterSlot("bias").shape, [outChannels])
        XCTAssertTrue(harness.store.bufferSlots.isEmpty)
        XCTAssertEqual(harness.layer.name, "conv")
        XCTAssertEqual(harness.layer.inputShape, [inChannels, height, width])
        XCTAssertEqual(harness.layer.outputShape, [outChannels, height, width])
    }

    func testForwardIsTheDirectConvolution() {
        for kernel in [3, 5, 1] {
            let harness = makeHarness(kernelSize: kernel)
            let x = Fixtures.normals(batch * inChannels * height * width, seed: 1)
            let y = harness.forward(x, context: ForwardContext(mode: .training))
            let w = Array(harness.store.parameter(harness.parameterSlot("weight")))
            let b = Array(harness.store.parameter(harness.parameterSlot("bias")))
            assertAllClose(
                y, directConvolution(x, weight: w, bias: b, kernelSize: kernel), relative: 1e-5, absolute: 1e-5,
                "kernel \(kernel)")
        }
    }

    func testGradientsMatchFiniteDifferences() {
        for kernel in [3, 5] {
            makeHarness(kernelSize: kernel).assertWeightAndBiasGradients("kernel \(kernel)")
        }
    }

    func testEveryBatchSizeGetsPrimitivesOfItsOwn() {
        // The primitives are made per batch size; a batch of one sample at a time and the whole
        // batch must agree: outputs per sample, gradients as the sum over the samples.
        let x = Fixtures.normals(batch * inChannels * height * width, seed: 4)
        let dy = Fixtures.normals(batch * outChannels * height * width, seed: 5)
        let context = ForwardContext(mode: .training)
        let whole = makeHarness()
        let single = makeHarness()
        let yWhole = whole.forward(x, context: context)
        let dxWhole = whole.gradients(input: x, outputGradient: dy, context: context)
        let inCount = inChannels * height * width
        let outCount = outChannels * height * width
        var ySingle: [Float] = []
        var dxSingle: [Float] = []
        var gradientSum = [Double](repeating: 0, count: single.store.gradients.count)
        for n in 0..<batch {
            let xn = Array(x[(n * inCount)..<((n + 1) * inCount)])
            let dyn = Array(dy[(n * outCount)..<((n + 1) * outCount)])
            ySingle += single.forward(xn, batch: 1, context: context)
            dxSingle += single.gradients(input: xn, outputGradient: dyn, batch: 1, context: context)
            for (i, g) in single.store.gradients.enumerated() { gradientSum[i] += Double(g) }
        }
        assertAllClose(ySingle, yWhole, relative: 1e-5, absolute: 1e-5, "y")
        assertAllClose(dxSingle, dxWhole, relative: 1e-5, absolute: 1e-5, "dx")
        assertAllClose(
            Array(whole.store.gradients), gradientSum.map(Float.init), relative: 1e-5, absolute: 1e-5, "dW, db")
    }

    func testBackwardOverwritesParameterGradientsAndMaySkipTheInput() {
        let harness = makeHarness()
        let x = Fixtures.normals(batch * inChannels * height * width, seed: 6)
        let dy = Fixtures.normals(batch * outChannels * height * width, seed: 7)
        let context = ForwardContext(mode: .training)
        _ = harness.gradients(input: x, outputGradient: dy, context: context)
        let first = Array(harness.store.gradients)
        // Without an input gradient (the first layer of a network) the parameter gradients are the same.
        let y = harness.forward(x, context: context)
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeBufferPointer { yp in
                dy.withUnsafeBufferPointer { g in
                    harness.layer.backward(input: xp, output: yp, outputGradient: g, inputGradient: nil, batch: batch)
                }
            }
        }
        XCTAssertEqual(Array(harness.store.gradients), first)
        // The bias gradient sums dy over samples and positions, here in Double.
        let plane = height * width
        let expected = (0..<outChannels).map { o in
            Float(
                (0..<batch).reduce(0.0) { total, n in
                    (0..<plane).reduce(total) { $0 + Double(dy[(n * outChannels + o) * plane + $1]) }
                })
        }
        assertAllClose(
            Array(harness.store.gradient(harness.parameterSlot("bias"))), expected, relative: 1e-5, absolute: 1e-5)
    }

    func testInitializationFollowsPyTorchBounds() {
        let harness = makeHarness()
        // fan_in = in * kh * kw = 27.
        let bound = 1 / Float(27).squareRoot()
        let values = Array(harness.store.parameters)
        XCTAssertEqual(values.count, 5 * 27 + 5)
        XCTAssertTrue(values.allSatisfy { abs($0) <= bound }, "a value exceeds 1/sqrt(27) = \(bound)")
        XCTAssertGreaterThan(values.map(abs).max()!, 0.9 * bound)
        XCTAssertGreaterThan(Set(values).count, values.count - 2)
    }

    func testInferenceFLOPs() {
        // 2 * Cin * kh * kw * Cout * H * W + Cout * H * W = 2 * 3 * 9 * 5 * 63 + 5 * 63 = 17_010 + 315.
        XCTAssertEqual(makeHarness().layer.inferenceFLOPs, 17_325)
        // 5x5: 2 * 3 * 25 * 5 * 63 + 315 = 47_250 + 315.
        XCTAssertEqual(makeHarness(kernelSize: 5).layer.inferenceFLOPs, 47_565)
    }

    func testEveryPairOfMapLayoutsComputesTheSameConvolution() {
        // Channels-first on both sides is checked against direct loops above; every other pair
        // must give the same y, dx, dW and db with the maps permuted.
        let x = Fixtures.normals(batch * inChannels * height * width, seed: 8)
        let dy = Fixtures.normals(batch * outChannels * height * width, seed: 9)
        let context = ForwardContext(mode: .training)
        let reference = makeHarness()
        let y = reference.forward(x, context: context)
        let dx = reference.gradients(input: x, outputGradient: dy, context: context)
        let parameterGradients = Array(reference.store.gradients)
        // 3 and 5 channels fill no block: blocked maps have a test of their own.
        let layouts: [MapLayout] = [.channelsFirst, .channelsLast]
        for input in layouts {
            for output in layouts where (input, output) != (.channelsFirst, .channelsFirst) {
                let label = "\(input) -> \(output)"
                let harness = LayerHarness(
                    Conv2D(
                        inputShape: [inChannels, height, width], outputChannels: outChannels,
                        inputLayout: input, outputLayout: output), batch: batch, seed: 11)
                let xIn = MapLayout.channelsFirst.converted(
                    x, to: input, channels: inChannels, height: height, width: width)
                let dyIn = MapLayout.channelsFirst.converted(
                    dy, to: output, channels: outChannels, height: height, width: width)
                let yOut = harness.forward(xIn, context: context)
                assertAllClose(
                    output.converted(yOut, to: .channelsFirst, channels: outChannels, height: height, width: width), y,
                    relative: 1e-5, absolute: 1e-5, "y, \(label)")
                let dxOut = harness.gradients(input: xIn, outputGradient: dyIn, context: context)
                assertAllClose(
                    input.converted(dxOut, to: .channelsFirst, channels: inChannels, height: height, width: width), dx,
                    relative: 1e-5, absolute: 1e-5, "dx, \(label)")
                assertAllClose(
                    Array(harness.store.gradients), parameterGradients, relative: 1e-5, absolute: 1e-5,
                    "dW, db, \(label)")
            }
        }
    }

    func testBlockedMapsComputeTheSameConvolution() {
        // 16 -> 32 channels: blocked (8 or 16 wide) on either side or both, against channels-first.
        let (inC, outC) = (16, 32)
        let x = Fixtures.normals(2 * inC * 5 * 6, seed: 14)
        let dy = Fixtures.normals(2 * outC * 5 * 6, seed: 15)
        let context = ForwardContext(mode: .training)
        func harness(_ input: MapLayout, _ output: MapLayout) -> LayerHarness {
            LayerHarness(
                Conv2D(inputShape: [inC, 5, 6], outputChannels: outC, inputLayout: input, outputLayout: output),
                batch: 2, seed: 16)
        }
        let reference = harness(.channelsFirst, .channelsFirst)
        let y = reference.forward(x, context: context)
        let dx = reference.gradients(input: x, outputGradient: dy, context: context)
        let parameterGradients = Array(reference.store.gradients)
        for (input, output) in [
            (MapLayout.blocked16, MapLayout.blocked16), (.channelsFirst, .blocked16), (.blocked16, .channelsLast),
            (.channelsLast, .blocked16), (.blocked8, .blocked8), (.channelsFirst, .blocked8),
            (.blocked8, .channelsLast),
            (.channelsLast, .blocked8), (.blocked16, .blocked8), (.blocked8, .blocked16),
        ] {
            let label = "\(input) -> \(output)"
            let layer = harness(input, output)
            let xIn = MapLayout.channelsFirst.converted(x, to: input, channels: inC, height: 5, width: 6)
            let dyIn = MapLayout.channelsFirst.converted(dy, to: output, channels: outC, height: 5, width: 6)
            let yOut = layer.forward(xIn, context: context)
            assertAllClose(
                output.converted(yOut, to: .channelsFirst, channels: outC, height: 5, width: 6), y, relative: 1e-5,
                absolute: 1e-5, "y, \(label)")
            let dxOut = layer.gradients(input: xIn, outputGradient: dyIn, context: context)
            assertAllClose(
                input.converted(dxOut, to: .channelsFirst, channels: inC, height: 5, width: 6), dx, relative: 1e-5,
                absolute: 1e-5, "dx, \(label)")
            assertAllClose(
                Array(layer.store.gradients), parameterGradients, relative: 1e-5, absolute: 1e-5, "dW, db, \(label)")
        }
    }

    func testOneChannelInputIsReadAsItIsInEveryKernelLayout() {
        // A one-channel image feeds a blocked and a channels-last output without a reorder; both
        // agree with channels-first.
        let x = Fixtures.normals(2 * 1 * 6 * 5, seed: 17)
        let context = ForwardContext(mode: .training)
        var outputs: [[Float]] = []
        for output in MapLayout.allCases {
            let layer = LayerHarness(
                Conv2D(inputShape: [1, 6, 5], outputChannels: 16, inputLayout: .channelsFirst, outputLayout: output),
                batch: 2, seed: 18)
            outputs.append(
                output.converted(
                    layer.forward(x, context: context), to: .channelsFirst, channels: 16, height: 6, width: 5))
        }
        for (layout, output) in zip(MapLayout.allCases, outputs).dropFirst() {
            assertAllClose(output, outputs[0], relative: 1e-5, absolute: 1e-5, "\(layout)")
        }
    }

    func testAForwardPassAtANewBatchSizeRunsInPowerOfTwoPieces() {
        // 7 samples where only the harness's 8 were made: 4 + 2 + 1, each sample as alone.
        let harness = LayerHarness(
            Conv2D(inputShape: [inChannels, height, width], outputChannels: outChannels), batch: 8, seed: 11)
        let inCount = inChannels * height * width
        let x = Fixtures.normals(7 * inCount, seed: 19)
        let context = ForwardContext(mode: .inference)
        let seven = harness.forward(x, batch: 7, context: context)
        let single = (0..<7).flatMap { n in
            harness.forward(Array(x[(n * inCount)..<((n + 1) * inCount)]), batch: 1, context: context)
        }
        assertAllClose(seven, single, relative: 1e-5, absolute: 1e-5)
        let conv = harness.layer as! Conv2D
        XCTAssertEqual(conv.preparedBatchSizes, [1, 2, 4, 8])
        // The backward pass at that size has primitives of its own.
        let dy = Fixtures.normals(seven.count, seed: 20)
        let dx = harness.backward(input: x, output: seven, outputGradient: dy, batch: 7)
        XCTAssertTrue(dx.allSatisfy(\.isFinite))
        XCTAssertEqual(conv.preparedBatchSizes, [1, 2, 4, 7, 8])
    }
}
