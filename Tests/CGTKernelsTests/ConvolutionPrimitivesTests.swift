import CGTDNNL
import CGTKernels
import CGTTestSupport
import XCTest

/// oneDNN's convolution passes against the direct loops of their definitions, in Double.
final class ConvolutionPrimitivesTests: XCTestCase {
    /// y from the forward pass, then dx, dW and db from the backward pass (NaN where a pass wrote nothing).
    private func allPasses(
        _ primitives: ConvolutionPrimitives, x: [Float], weight w: [Float], bias b: [Float], outputGradient dy: [Float]
    )
        -> (y: [Float], dx: [Float], dw: [Float], db: [Float])
    {
        var y = [Float](repeating: .nan, count: dy.count)
        var dx = [Float](repeating: .nan, count: x.count)
        var dw = [Float](repeating: .nan, count: w.count)
        var db = [Float](repeating: .nan, count: b.count)
        y.withUnsafeMutableBufferPointer { primitives.forward(input: x, weight: w, bias: b, output: $0.baseAddress!) }
        dw.withUnsafeMutableBufferPointer { dwp in
            db.withUnsafeMutableBufferPointer { dbp in
                dx.withUnsafeMutableBufferPointer { dxp in
                    primitives.backward(
                        input: x, outputGradient: dy, weight: w, weightGradient: dwp.baseAddress!,
                        biasGradient: dbp.baseAddress!, inputGradient: dxp.baseAddress!)
                }
            }
        }
        return (y, dx, dw, db)
    }

    typealias Geometry = ConvolutionKernels.Geometry

    /// Odd maps, non-square and 1x1 kernels, explicit paddings that shrink and grow the output,
    /// and channel counts below, at and across oneDNN's 16-channel blocks.
    let cases: [(geometry: Geometry, outputChannels: Int)] = [
        (Geometry(channels: 3, height: 7, width: 9, kernelHeight: 3, kernelWidth: 3), 5),
        (Geometry(channels: 1, height: 8, width: 8, kernelHeight: 3, kernelWidth: 3), 32),
        (Geometry(channels: 17, height: 5, width: 6, kernelHeight: 3, kernelWidth: 5), 16),
        (Geometry(channels: 32, height: 7, width: 7, kernelHeight: 3, kernelWidth: 3), 33),
        (Geometry(channels: 4, height: 3, width: 5, kernelHeight: 1, kernelWidth: 1), 3),
        (
            Geometry(
                channels: 2, height: 6, width: 7, kernelHeight: 3, kernelWidth: 3, paddingHeight: 0, paddingWidth: 0), 4
        ),
        (
            Geometry(
                channels: 1, height: 3, width: 4, kernelHeight: 3, kernelWidth: 3, paddingHeight: 2, paddingWidth: 1), 2
        ),
    ]
    let batch = 3

    private func at(_ x: [Float], _ g: Geometry, _ n: Int, _ c: Int, _ iy: Int, _ ix: Int) -> Int? {
        guard iy >= 0 && iy < g.height && ix >= 0 && ix < g.width else { return nil }
        return ((n * g.channels + c) * g.height + iy) * g.width + ix
    }

    /// Calls `body(n, o, oy, ox, c, i, j, input index)` for every multiply-add of the convolution.
    private func forEachTap(
        _ g: Geometry, outputChannels: Int, _ body: (Int, Int, Int, Int, Int, Int, Int, Int) -> Void
    ) {
        for n in 0..<batch {
            for o in 0..<outputChannels {
                for oy in 0..<g.outputHeight {
                    for ox in 0..<g.outputWidth {
                        for c in 0..<g.channels {
                            for i in 0..<g.kernelHeight {
                                for j in 0..<g.kernelWidth {
                                    let iy = oy + i - g.paddingHeight
                                    let ix = ox + j - g.paddingWidth
                                    guard iy >= 0 && iy < g.height && ix >= 0 && ix < g.width else { continue }
                                    body(n, o, oy, ox, c, i, j, ((n * g.channels + c) * g.height + iy) * g.width + ix)
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    func testEveryPassIsItsDefinition() throws {
        for (g, outputChannels) in cases {
            let label =
                "\(g.channels)x\(g.height)x\(g.width) -> \(outputChannels), kernel \(g.kernelHeight)x\(g.kernelWidth), padding \(g.paddingHeight),\(g.paddingWidth)"
            let outputCount = batch * outputChannels * g.outputPositions
            let x = Fixtures.normals(batch * g.inputCount, seed: 1)
            let w = Fixtures.normals(outputChannels * g.patchSize, seed: 2)
            let b = Fixtures.normals(outputChannels, seed: 3)
            let dy = Fixtures.normals(outputCount, seed: 4)
            let yIndex = { (n: Int, o: Int, oy: Int, ox: Int) in
                ((n * outputChannels + o) * g.outputHeight + oy) * g.outputWidth + ox
            }
            let wIndex = { (o: Int, c: Int, i: Int, j: Int) in
                ((o * g.channels + c) * g.kernelHeight + i) * g.kernelWidth + j
            }

            var yExpected = [Double](repeating: 0, count: outputCount)
            for n in 0..<batch {
                for o in 0..<outputChannels {
                    for p in 0..<g.outputPositions {
                        yExpected[(n * outputChannels + o) * g.outputPositions + p] = Double(b[o])
                    }
                }
            }
            var dxExpected = [Double](repeating: 0, count: x.count)
            var dwExpected = [Double](repeating: 0, count: w.count)
            forEachTap(g, outputChannels: outputChannels) { n, o, oy, ox, c, i, j, input in
                yExpected[yIndex(n, o, oy, ox)] += Double(w[wIndex(o, c, i, j)]) * Double(x[input])
                dxExpected[input] += Double(w[wIndex(o, c, i, j)]) * Double(dy[yIndex(n, o, oy, ox)])
                dwExpected[wIndex(o, c, i, j)] += Double(x[input]) * Double(dy[yIndex(n, o, oy, ox)])
            }
            let dbExpected = (0..<outputChannels).map { o in
                (0..<batch).reduce(0.0) { total, n in
                    (0..<g.outputPositions).reduce(total) {
                        $0 + Double(dy[(n * outputChannels + o) * g.outputPositions + $1])
                    }
                }
            }

            let primitives = try ConvolutionPrimitives(
                geometry: g, outputChannels: outputChannels, batch: batch, inputGradient: true)
            let (y, dx, dw, db) = allPasses(primitives, x: x, weight: w, bias: b, outputGradient: dy)
            // Float sums of up to 300 normal products against Double: a few 1e-5 of rounding.
            assertAllClose(y, yExpected.floats, relative: 1e-4, absolute: 1e-4, "y, \(label)")
            assertAllClose(dx, dxExpected.floats, relative: 1e-4, absolute: 1e-4, "dx, \(label)")
            assertAllClose(dw, dwExpected.floats, relative: 1e-4, absolute: 1e-4, "dW, \(label)")
            assertAllClose(db, dbExpected.floats, relative: 1e-4, absolute: 1e-4, "db, \(label)")
        }
    }

    /// Without an input gradient the parameter gradients are the same and dx is left alone.
    func testBackwardWithoutInputGradientWritesOnlyTheParameters() throws {
        let g = Geometry(channels: 16, height: 6, width: 6, kernelHeight: 3, kernelWidth: 3)
        let x = Fixtures.normals(batch * g.inputCount, seed: 5)
        let w = Fixtures.normals(8 * g.patchSize, seed: 6)
        let dy = Fixtures.normals(batch * 8 * g.outputPositions, seed: 7)
        func parameterGradients(_ primitives: ConvolutionPrimitives, inputGradient: Bool) -> [Float] {
            var dw = [Float](repeating: .nan, count: w.count)
            var db = [Float](repeating: .nan, count: 8)
            var dx = [Float](repeating: 0, count: x.count)
            dw.withUnsafeMutableBufferPointer { dwp in
                db.withUnsafeMutableBufferPointer { dbp in
                    dx.withUnsafeMutableBufferPointer { dxp in
                        primitives.backward(
                            input: x, outputGradient: dy, weight: w, weightGradient: dwp.baseAddress!,
                            biasGradient: dbp.baseAddress!, inputGradient: inputGradient ? dxp.baseAddress! : nil)
                    }
                }
            }
            if !inputGradient { XCTAssertTrue(dx.allSatisfy { $0 == 0 }) }
            return dw + db
        }
        let full = try ConvolutionPrimitives(geometry: g, outputChannels: 8, batch: batch, inputGradient: true)
        let weightsOnly = try ConvolutionPrimitives(geometry: g, outputChannels: 8, batch: batch, inputGradient: false)
        XCTAssertEqual(
            parameterGradients(weightsOnly, inputGradient: false), parameterGradients(full, inputGradient: true))
        XCTAssertNil(weightsOnly.implementations.backwardData)
    }

    /// The same inputs give the same bits every time (oneDNN's algorithms are fixed per shape and thread count).
    func testPassesAreDeterministic() throws {
        let g = Geometry(channels: 32, height: 14, width: 14, kernelHeight: 3, kernelWidth: 3)
        let x = Fixtures.normals(batch * g.inputCount, seed: 8)
        let w = Fixtures.normals(64 * g.patchSize, seed: 9)
        let b = Fixtures.normals(64, seed: 10)
        let dy = Fixtures.normals(batch * 64 * g.outputPositions, seed: 11)
        func run() throws -> [Float] {
            let (y, dx, dw, db) = allPasses(
                try ConvolutionPrimitives(geometry: g, outputChannels: 64, batch: batch, inputGradient: true),
                x: x, weight: w, bias: b, outputGradient: dy)
            return y + dx + dw + db
        }
        XCTAssertEqual(try run(), try run())
    }

    func testGeometryKeepsTheSizeWithHalfKernelPadding() {
        let g = Geometry(channels: 3, height: 7, width: 9, kernelHeight: 3, kernelWidth: 5)
        XCTAssertEqual([g.paddingHeight, g.paddingWidth], [1, 2])
        XCTAssertEqual([g.outputHeight, g.outputWidth], [7, 9])
        XCTAssertEqual(g.patchSize, 45)
        XCTAssertEqual(g.inputCount, 189)
        let valid = Geometry(
            channels: 1, height: 6, width: 7, kernelHeight: 3, kernelWidth: 3, paddingHeight: 0, paddingWidth: 0)
        XCTAssertEqual([valid.outputHeight, valid.outputWidth], [4, 5])
    }
}

/// What oneDNN dispatches to on this machine.
final class ComputeEngineTests: XCTestCase {
    /// oneDNN picks its kernels from the CPU's flags: where the kernels were built for AVX-512
    /// (the build host's flags), oneDNN must run 512-bit kernels too, unless told otherwise.
    func testOneDNNUsesTheVectorUnitsTheBuildTargets() throws {
        try XCTSkipIf(
            ProcessInfo.processInfo.environment["ONEDNN_MAX_CPU_ISA"] != nil, "ONEDNN_MAX_CPU_ISA limits oneDNN")
        try XCTSkipUnless(
            KernelTarget.hasAVX2, "built for baseline x86-64 (CGT_CPU=x86-64): the build says nothing of the CPU")
        XCTAssertEqual(DNNLRuntime.vectorBits, KernelTarget.hasAVX512F ? 512 : 256)
        XCTAssertTrue(DNNLRuntime.summary.hasPrefix("oneDNN \(DNNLRuntime.version), \(DNNLRuntime.instructionSet)"))
    }

    func testThreadCountIsSetAndRead() {
        let before = DNNLRuntime.threadCount
        defer { DNNLRuntime.setThreadCount(before) }
        DNNLRuntime.setThreadCount(1)
        XCTAssertEqual(DNNLRuntime.threadCount, 1)
        DNNLRuntime.setThreadCount(0)
        XCTAssertEqual(DNNLRuntime.threadCount, 1, "fewer than one thread means one")
    }

    /// The measured peak is positive and no more than the two FMA units of a core at 6 GHz could give.
    func testFMAPeakIsPlausible() {
        let peak = FMAPeak.measure(rounds: 1)
        XCTAssertGreaterThan(peak, 1)
        XCTAssertLessThan(peak, 2 * 2 * Double(FMAPeak.lanes) * 6)
    }
}
