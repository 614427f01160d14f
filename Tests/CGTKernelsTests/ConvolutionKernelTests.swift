import CGTKernels
import CGTTestSupport
import XCTest

/// Scalar twins of the convolution kernels, written from the definitions with plain index
/// arithmetic and Double sums.
private enum ConvolutionReference {
    typealias Geometry = ConvolutionKernels.Geometry

    /// x[n, c, iy, ix], or 0 outside the input (the zero padding).
    static func value(_ x: [Float], _ g: Geometry, n: Int, c: Int, iy: Int, ix: Int) -> Float {
        guard iy >= 0 && iy < g.height && ix >= 0 && ix < g.width else { return 0 }
        return x[((n * g.channels + c) * g.height + iy) * g.width + ix]
    }

    /// y[n, o, oy, ox] = bias[o] + sum_{c, i, j} w[o, c, i, j] x[n, c, oy + i - ph, ox + j - pw]: the direct loops.
    static func convolution(_ x: [Float], _ g: Geometry, samples: Int, weight: [Float], bias: [Float], outputChannels: Int) -> [Double] {
        let oh = g.outputHeight, ow = g.outputWidth, kh = g.kernelHeight, kw = g.kernelWidth
        var y = [Double](repeating: 0, count: samples * outputChannels * oh * ow)
        for n in 0..<samples {
            for o in 0..<outputChannels {
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        var total = Double(bias[o])
                        for c in 0..<g.channels {
                            for i in 0..<kh {
                                for j in 0..<kw {
                                    let w = weight[((o * g.channels + c) * kh + i) * kw + j]
                                    total += Double(w) * Double(value(x, g, n: n, c: c, iy: oy + i - g.paddingHeight, ix: ox + j - g.paddingWidth))
                                }
                            }
                        }
                        y[((n * outputChannels + o) * oh + oy) * ow + ox] = total
                    }
                }
            }
        }
        return y
    }

    /// columns[(c, i, j), n * P + oy * Wout + ox] = x[n, c, oy + i - ph, ox + j - pw].
    static func im2col(_ x: [Float], _ g: Geometry, samples: Int) -> [Float] {
        let p = g.outputPositions, kh = g.kernelHeight, kw = g.kernelWidth
        var columns = [Float](repeating: .nan, count: g.patchSize * samples * p)
        for c in 0..<g.channels {
            for i in 0..<kh {
                for j in 0..<kw {
                    let row = (c * kh + i) * kw + j
                    for n in 0..<samples {
                        for oy in 0..<g.outputHeight {
                            for ox in 0..<g.outputWidth {
                                columns[row * samples * p + n * p + oy * g.outputWidth + ox] =
                                    value(x, g, n: n, c: c, iy: oy + i - g.paddingHeight, ix: ox + j - g.paddingWidth)
                            }
                        }
                    }
                }
            }
        }
        return columns
    }

    /// dx[n, c, iy, ix] = sum of every column entry im2col copied from x[n, c, iy, ix].
    static func col2im(_ columns: [Float], _ g: Geometry, samples: Int) -> [Double] {
        let p = g.outputPositions, kh = g.kernelHeight, kw = g.kernelWidth
        var dx = [Double](repeating: 0, count: samples * g.inputCount)
        for c in 0..<g.channels {
            for i in 0..<kh {
                for j in 0..<kw {
                    let row = (c * kh + i) * kw + j
                    for n in 0..<samples {
                        for oy in 0..<g.outputHeight {
                            for ox in 0..<g.outputWidth {
                                let iy = oy + i - g.paddingHeight, ix = ox + j - g.paddingWidth
                                guard iy >= 0 && iy < g.height && ix >= 0 && ix < g.width else { continue }
                                dx[((n * g.channels + c) * g.height + iy) * g.width + ix] +=
                                    Double(columns[row * samples * p + n * p + oy * g.outputWidth + ox])
                            }
                        }
                    }
                }
            }
        }
        return dx
    }
}

final class ConvolutionKernelTests: XCTestCase {
    typealias Geometry = ConvolutionKernels.Geometry

    /// Odd sizes, square and non-square kernels, 1x1, a kernel as wide as the input, a map
    /// wider than one 16-lane vector (so that col2im's vector body runs), and explicit paddings
    /// that shrink and grow the output.
    let geometries: [Geometry] = [
        Geometry(channels: 3, height: 7, width: 9, kernelHeight: 3, kernelWidth: 3),
        Geometry(channels: 2, height: 5, width: 6, kernelHeight: 3, kernelWidth: 5),
        Geometry(channels: 4, height: 3, width: 5, kernelHeight: 1, kernelWidth: 1),
        Geometry(channels: 1, height: 5, width: 5, kernelHeight: 5, kernelWidth: 5),
        Geometry(channels: 2, height: 4, width: 37, kernelHeight: 3, kernelWidth: 3),
        Geometry(channels: 2, height: 6, width: 7, kernelHeight: 3, kernelWidth: 3, paddingHeight: 0, paddingWidth: 0),
        Geometry(channels: 1, height: 3, width: 4, kernelHeight: 3, kernelWidth: 3, paddingHeight: 2, paddingWidth: 1),
        // The paper CNN's 28-, 14- and 7-wide rows, and rows whose copies are 1-3, 16 and 32 long.
        Geometry(channels: 2, height: 5, width: 28, kernelHeight: 3, kernelWidth: 3),
        Geometry(channels: 3, height: 4, width: 14, kernelHeight: 3, kernelWidth: 3),
        Geometry(channels: 2, height: 7, width: 7, kernelHeight: 3, kernelWidth: 3),
        Geometry(channels: 2, height: 3, width: 2, kernelHeight: 3, kernelWidth: 3),
        Geometry(channels: 1, height: 3, width: 3, kernelHeight: 3, kernelWidth: 3),
        Geometry(channels: 2, height: 3, width: 17, kernelHeight: 3, kernelWidth: 3),
        Geometry(channels: 1, height: 2, width: 33, kernelHeight: 3, kernelWidth: 3),
    ]

    private func im2col(_ x: [Float], _ g: Geometry, samples: Int) -> [Float] {
        var columns = [Float](repeating: .nan, count: g.patchSize * samples * g.outputPositions)
        x.withUnsafeBufferPointer { xp in
            columns.withUnsafeMutableBufferPointer { ConvolutionKernels.im2col(xp, geometry: g, samples: samples, into: $0) }
        }
        return columns
    }

    private func col2im(_ columns: [Float], _ g: Geometry, samples: Int) -> [Float] {
        var dx = [Float](repeating: .nan, count: samples * g.inputCount)
        columns.withUnsafeBufferPointer { cp in
            dx.withUnsafeMutableBufferPointer { ConvolutionKernels.col2im(cp, geometry: g, samples: samples, into: $0) }
        }
        return dx
    }

    func testGeometryKeepsTheSizeWithHalfKernelPadding() {
        let g = Geometry(channels: 3, height: 7, width: 9, kernelHeight: 3, kernelWidth: 5)
        XCTAssertEqual([g.paddingHeight, g.paddingWidth], [1, 2])
        XCTAssertEqual([g.outputHeight, g.outputWidth], [7, 9])
        XCTAssertEqual(g.patchSize, 45)
        XCTAssertEqual(g.inputCount, 189)
        let valid = Geometry(channels: 1, height: 6, width: 7, kernelHeight: 3, kernelWidth: 3, paddingHeight: 0, paddingWidth: 0)
        XCTAssertEqual([valid.outputHeight, valid.outputWidth], [4, 5])
    }

    func testIm2colCopiesEveryTapExactly() {
        for g in geometries {
            for samples in [1, 2, 3] {
                let x = Fixtures.normals(samples * g.inputCount, seed: UInt64(samples * 31 + g.width))
                assertExactlyEqual(im2col(x, g, samples: samples), ConvolutionReference.im2col(x, g, samples: samples), "\(g), \(samples) samples")
            }
        }
    }

    func testCol2imSumsOverlappingTaps() {
        for g in geometries {
            for samples in [1, 2] {
                let columns = Fixtures.normals(g.patchSize * samples * g.outputPositions, seed: UInt64(g.height * 7 + samples))
                assertAllClose(col2im(columns, g, samples: samples), ConvolutionReference.col2im(columns, g, samples: samples).floats,
                               relative: 1e-5, absolute: 1e-5, "\(g), \(samples) samples")
            }
        }
    }

    func testCol2imIsTheAdjointOfIm2col() {
        // <im2col(x), c> = <x, col2im(c)> for every x and c: the backward pass of the unfolding.
        for g in geometries {
            let samples = 2
            let x = Fixtures.normals(samples * g.inputCount, seed: 5)
            let c = Fixtures.normals(g.patchSize * samples * g.outputPositions, seed: 6)
            let lhs = Reference.dot(im2col(x, g, samples: samples), c)
            let rhs = Reference.dot(x, col2im(c, g, samples: samples))
            XCTAssertEqual(lhs, rhs, accuracy: 1e-4 * max(1, abs(lhs)), "\(g)")
        }
    }

    /// im2col, one product per group of samples and the reshuffle into `[N, Cout, H, W]` give the direct convolution.
    func testColumnProductIsTheDirectConvolution() {
        let outputChannels = 5
        for g in geometries {
            let samples = 2
            let x = Fixtures.normals(samples * g.inputCount, seed: 11)
            let weight = Fixtures.normals(outputChannels * g.patchSize, seed: 12)
            let bias = Fixtures.normals(outputChannels, seed: 13)
            let expected = ConvolutionReference.convolution(x, g, samples: samples, weight: weight, bias: bias, outputChannels: outputChannels).floats
            let p = g.outputPositions
            // All samples in one product.
            let columns = im2col(x, g, samples: samples)
            var product = [Float](repeating: .nan, count: outputChannels * samples * p)
            product.withUnsafeMutableBufferPointer { c in
                MatrixMultiply.gemm(.plain, .plain, m: outputChannels, n: samples * p, k: g.patchSize, a: weight, b: columns, c: c.baseAddress!)
            }
            var y = [Float](repeating: .nan, count: samples * outputChannels * p)
            product.withUnsafeBufferPointer { src in
                bias.withUnsafeBufferPointer { b in
                    y.withUnsafeMutableBufferPointer {
                        ConvolutionKernels.channelMajorToSampleMajor(src, channels: outputChannels, samples: samples, positions: p, bias: b, into: $0)
                    }
                }
            }
            assertAllClose(y, expected, relative: 1e-4, absolute: 1e-4, "grouped product, \(g)")
            // One product per sample, straight into its output slice, then the bias.
            var z = [Float](repeating: .nan, count: samples * outputChannels * p)
            for n in 0..<samples {
                let single = im2col(Array(x[(n * g.inputCount)..<((n + 1) * g.inputCount)]), g, samples: 1)
                z.withUnsafeMutableBufferPointer { out in
                    MatrixMultiply.gemm(.plain, .plain, m: outputChannels, n: p, k: g.patchSize, a: weight, b: single,
                                        c: out.baseAddress! + n * outputChannels * p)
                }
            }
            bias.withUnsafeBufferPointer { b in
                z.withUnsafeMutableBufferPointer { ConvolutionKernels.addChannelBias(b, to: $0, samples: samples, positions: p) }
            }
            assertAllClose(z, expected, relative: 1e-4, absolute: 1e-4, "per-sample product, \(g)")
        }
    }

    func testSampleMajorAndChannelMajorAreInversePermutations() {
        for (channels, samples, positions) in [(5, 3, 17), (2, 1, 16), (3, 4, 1), (7, 2, 33)] {
            let count = channels * samples * positions
            let x = Fixtures.normals(count, seed: UInt64(count))
            var channelMajor = [Float](repeating: .nan, count: count)
            x.withUnsafeBufferPointer { src in
                channelMajor.withUnsafeMutableBufferPointer {
                    ConvolutionKernels.sampleMajorToChannelMajor(src, channels: channels, samples: samples, positions: positions, into: $0)
                }
            }
            var expected = [Float](repeating: .nan, count: count)
            for n in 0..<samples {
                for o in 0..<channels {
                    for p in 0..<positions { expected[o * samples * positions + n * positions + p] = x[(n * channels + o) * positions + p] }
                }
            }
            assertExactlyEqual(channelMajor, expected, "to channel-major \(channels)x\(samples)x\(positions)")
            // And back, with a zero bias, exactly.
            var back = [Float](repeating: .nan, count: count)
            let zero = [Float](repeating: 0, count: channels)
            channelMajor.withUnsafeBufferPointer { src in
                zero.withUnsafeBufferPointer { b in
                    back.withUnsafeMutableBufferPointer {
                        ConvolutionKernels.channelMajorToSampleMajor(src, channels: channels, samples: samples, positions: positions, bias: b, into: $0)
                    }
                }
            }
            assertExactlyEqual(back, x, "round trip \(channels)x\(samples)x\(positions)")
        }
    }

    func testChannelBiasAndChannelSums() {
        for (channels, samples, positions) in [(5, 2, 63), (3, 3, 16), (1, 4, 1), (4, 1, 17)] {
            let count = channels * samples * positions
            let x = Fixtures.normals(count, seed: UInt64(count + 1))
            let bias = Fixtures.normals(channels, seed: UInt64(count + 2))
            var y = x
            bias.withUnsafeBufferPointer { b in
                y.withUnsafeMutableBufferPointer { ConvolutionKernels.addChannelBias(b, to: $0, samples: samples, positions: positions) }
            }
            let expected = (0..<count).map { x[$0] + bias[($0 / positions) % channels] }
            assertExactlyEqual(y, expected, "bias \(channels)x\(samples)x\(positions)")

            var sums = [Float](repeating: .nan, count: channels)
            x.withUnsafeBufferPointer { src in
                sums.withUnsafeMutableBufferPointer { ConvolutionKernels.channelSums(src, samples: samples, positions: positions, into: $0) }
            }
            var reference = [Double](repeating: 0, count: channels)
            for k in 0..<count { reference[(k / positions) % channels] += Double(x[k]) }
            assertAllClose(sums, reference.floats, relative: 1e-5, absolute: 1e-5, "sums \(channels)x\(samples)x\(positions)")
        }
    }
}
