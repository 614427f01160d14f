import CGTKernels
import CGTTestSupport
import XCTest

final class PoolingKernelTests: XCTestCase {
    /// (planes, height, width): odd sides (a dropped row or column), 2x2, one output column,
    /// output rows narrower than a vector (3, 4, 7: one vector spilling into the next rows, the
    /// last rows scalar), of 8 (one vector), 14, 16, 18 and 25 (vectors, the last overlapping),
    /// and the paper CNN's 28x28, 14x14 and 7x7 planes.
    let planeShapes = [
        (6, 7, 9), (2, 2, 2), (3, 5, 3), (2, 5, 37), (1, 4, 64), (4, 3, 33), (3, 4, 28), (2, 6, 14), (2, 4, 50),
        (5, 2, 16), (3, 6, 8), (4, 28, 28), (9, 14, 14), (11, 7, 7), (2, 3, 51),
    ]

    /// Runs the kernel on buffers followed by sentinels, and checks that it wrote nothing past its output.
    private func maxPool(
        _ x: [Float], planes: Int, height: Int, width: Int,
        file: StaticString = #filePath, line: UInt = #line
    ) -> (output: [Float], argmax: [Int32]) {
        let count = planes * (height / 2) * (width / 2)
        let guardCount = 16
        var output = [Float](repeating: .nan, count: count + guardCount)
        var argmax = [Int32](repeating: -1, count: count + guardCount)
        x.withUnsafeBufferPointer { xp in
            output.withUnsafeMutableBufferPointer { y in
                argmax.withUnsafeMutableBufferPointer { a in
                    PoolingKernels.maxPool2x2Forward(
                        xp, planes: planes, height: height, width: width,
                        output: UnsafeMutableBufferPointer(rebasing: y[..<count]),
                        argmax: UnsafeMutableBufferPointer(rebasing: a[..<count]))
                }
            }
        }
        XCTAssertTrue(
            output[count...].allSatisfy(\.isNaN) && argmax[count...].allSatisfy { $0 == -1 },
            "\(planes)x\(height)x\(width): wrote past the output", file: file, line: line)
        return (Array(output[..<count]), Array(argmax[..<count]))
    }

    /// The maximum of each window and where it is (the first of equal values in row-major window
    /// order; a NaN beats any number and a later NaN an earlier one, as PyTorch's CPU kernel).
    private func referenceMaxPool(_ x: [Float], planes: Int, height: Int, width: Int) -> (
        output: [Float], argmax: [Int32]
    ) {
        var output: [Float] = []
        var argmax: [Int32] = []
        for p in 0..<planes {
            for oy in 0..<(height / 2) {
                for ox in 0..<(width / 2) {
                    var bestIndex = -1
                    for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                        let index = (2 * oy + dy) * width + 2 * ox + dx
                        let value = x[p * height * width + index]
                        if bestIndex < 0 || value > x[p * height * width + bestIndex] || value.isNaN {
                            bestIndex = index
                        }
                    }
                    output.append(x[p * height * width + bestIndex])
                    argmax.append(Int32(bestIndex))
                }
            }
        }
        return (output, argmax)
    }

    func testMaxPoolForwardMatchesReference() {
        for (planes, height, width) in planeShapes {
            let x = Fixtures.normals(planes * height * width, seed: UInt64(height * 100 + width))
            let actual = maxPool(x, planes: planes, height: height, width: width)
            let expected = referenceMaxPool(x, planes: planes, height: height, width: width)
            assertExactlyEqual(actual.output, expected.output, "\(planes)x\(height)x\(width)")
            XCTAssertEqual(actual.argmax, expected.argmax, "\(planes)x\(height)x\(width)")
        }
    }

    func testMaxPoolPassesANaNAnywhereInTheWindow() {
        // One NaN per window at a position that cycles through the four, then two NaNs per
        // window (the later one is chosen), in vectors (widths 14, 18, 40), in rows spilling
        // into the next (width 6) and in the scalar last rows.
        for width in [6, 14, 18, 40] {
            let planes = 3
            let height = 4
            var x = Fixtures.normals(planes * height * width, seed: UInt64(width))
            var twoNaNs = x
            let windows = [(0, 0), (0, 1), (1, 0), (1, 1)]
            var window = 0
            for p in 0..<planes {
                for oy in 0..<(height / 2) {
                    for ox in 0..<(width / 2) {
                        let at = { (k: Int) in
                            p * height * width + (2 * oy + windows[k].0) * width + 2 * ox + windows[k].1
                        }
                        x[at(window % 4)] = .nan
                        twoNaNs[at(window % 4)] = .nan
                        twoNaNs[at((window + 1 + window / 4 % 3) % 4)] = .nan
                        window += 1
                    }
                }
            }
            for input in [x, twoNaNs] {
                let actual = maxPool(input, planes: planes, height: height, width: width)
                let expected = referenceMaxPool(input, planes: planes, height: height, width: width)
                XCTAssertTrue(actual.output.allSatisfy(\.isNaN), "width \(width): a NaN vanished")
                XCTAssertEqual(actual.argmax, expected.argmax, "width \(width)")
            }
        }
    }

    func testMaxPoolTiesGoToTheFirstValueInTheWindow() {
        // Equal values everywhere, then equal maxima in the last three positions of each window,
        // in vectors (widths 14, 18 and 40; 6 and 14 in all but the last plane) and in the scalar
        // path (the last plane of width 6).
        for width in [6, 14, 18, 40] {
            let planes = 4
            let flat = [Float](repeating: 1, count: planes * 2 * width)
            let firstColumns = (0..<(width / 2)).map { Int32(2 * $0) }
            XCTAssertEqual(
                maxPool(flat, planes: planes, height: 2, width: width).argmax,
                Array([[Int32]](repeating: firstColumns, count: planes).joined()))
            var lateTie = [Float](repeating: 0, count: 2 * width)
            for column in stride(from: 1, to: width, by: 2) { lateTie[column] = 3 }
            for column in 0..<width { lateTie[width + column] = 3 }
            let secondColumns = firstColumns.map { $0 + 1 }
            XCTAssertEqual(
                maxPool(
                    Array([[Float]](repeating: lateTie, count: planes).joined()), planes: planes, height: 2,
                    width: width
                ).argmax,
                Array([[Int32]](repeating: secondColumns, count: planes).joined()))
        }
    }

    func testMaxPoolBackwardRoutesEachGradientToItsArgmax() {
        for (planes, height, width) in planeShapes {
            let x = Fixtures.normals(planes * height * width, seed: UInt64(width * 10 + height))
            let (_, argmax) = maxPool(x, planes: planes, height: height, width: width)
            let outputs = (height / 2) * (width / 2)
            let dy = Fixtures.normals(planes * outputs, seed: 99)
            var dx = [Float](repeating: .nan, count: x.count)
            dy.withUnsafeBufferPointer { g in
                argmax.withUnsafeBufferPointer { a in
                    dx.withUnsafeMutableBufferPointer {
                        PoolingKernels.maxPool2x2Backward(
                            outputGradient: g, argmax: a, planes: planes, height: height, width: width,
                            inputGradient: $0)
                    }
                }
            }
            // Reference: for each input, the gradient of the output whose window maximum it is, else 0.
            var expected = [Float](repeating: 0, count: x.count)
            let reference = referenceMaxPool(x, planes: planes, height: height, width: width)
            for p in 0..<planes {
                for o in 0..<outputs {
                    expected[p * height * width + Int(reference.argmax[p * outputs + o])] = dy[p * outputs + o]
                }
            }
            assertExactlyEqual(dx, expected, "\(planes)x\(height)x\(width)")
        }
    }

    func testGlobalAverageForwardAndBackward() {
        for (planes, spatial) in [(6, 63), (3, 1), (2, 16), (4, 49), (1, 33)] {
            let x = Fixtures.normals(planes * spatial, seed: UInt64(spatial))
            var y = [Float](repeating: .nan, count: planes)
            x.withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer {
                    PoolingKernels.globalAverageForward(xp, planes: planes, spatial: spatial, output: $0)
                }
            }
            let means = (0..<planes).map { p in
                Reference.sum(Array(x[(p * spatial)..<((p + 1) * spatial)])) / Double(spatial)
            }
            assertAllClose(y, means.floats, relative: 1e-5, absolute: 1e-6, "mean of \(planes) planes of \(spatial)")

            let dy = Fixtures.normals(planes, seed: UInt64(spatial + 1))
            var dx = [Float](repeating: .nan, count: planes * spatial)
            dy.withUnsafeBufferPointer { g in
                dx.withUnsafeMutableBufferPointer {
                    PoolingKernels.globalAverageBackward(
                        outputGradient: g, planes: planes, spatial: spatial, inputGradient: $0)
                }
            }
            let expected = (0..<(planes * spatial)).map { Float(Double(dy[$0 / spatial]) / Double(spatial)) }
            assertAllClose(dx, expected, relative: 1e-6, absolute: 0, "spread of \(planes) planes of \(spatial)")
        }
    }

    // MARK: Channels-last maps

    /// (maps, channels, height, width): channel counts below a vector, of one and two vectors and
    /// with a tail (1, 3, 16, 19, 32, 35), odd sides, and the paper CNN's maps.
    let channelsLastShapes = [
        (2, 3, 7, 9), (3, 1, 2, 2), (2, 16, 5, 3), (1, 19, 4, 6), (2, 35, 3, 5), (1, 32, 28, 28),
        (2, 64, 14, 14), (2, 128, 7, 7), (3, 17, 6, 4),
    ]

    /// The kernel's output and window slots, from buffers followed by sentinels it must not touch.
    private func channelsLastMaxPool(
        _ x: [Float], maps: Int, channels: Int, height: Int, width: Int,
        file: StaticString = #filePath, line: UInt = #line
    ) -> (output: [Float], window: [Int32]) {
        let count = maps * (height / 2) * (width / 2) * channels
        let guardCount = 16
        var output = [Float](repeating: .nan, count: count + guardCount)
        var window = [Int32](repeating: -1, count: count + guardCount)
        x.withUnsafeBufferPointer { xp in
            output.withUnsafeMutableBufferPointer { y in
                window.withUnsafeMutableBufferPointer { w in
                    PoolingKernels.maxPool2x2ChannelsLastForward(
                        xp, maps: maps, channels: channels, height: height, width: width,
                        output: UnsafeMutableBufferPointer(rebasing: y[..<count]),
                        window: UnsafeMutableBufferPointer(rebasing: w[..<count]))
                }
            }
        }
        XCTAssertTrue(
            output[count...].allSatisfy(\.isNaN) && window[count...].allSatisfy { $0 == -1 },
            "\(maps)x\(height)x\(width)x\(channels): wrote past the output", file: file, line: line)
        return (Array(output[..<count]), Array(window[..<count]))
    }

    /// The rules of `referenceMaxPool` on `[N, H, W, C]` maps, with the chosen window slot (0-3).
    private func referenceChannelsLastMaxPool(_ x: [Float], maps: Int, channels: Int, height: Int, width: Int) -> (
        output: [Float], window: [Int32]
    ) {
        var output: [Float] = []
        var window: [Int32] = []
        for n in 0..<maps {
            for oy in 0..<(height / 2) {
                for ox in 0..<(width / 2) {
                    for c in 0..<channels {
                        var best = -1
                        var bestValue: Float = 0
                        for (slot, (dy, dx)) in [(0, 0), (0, 1), (1, 0), (1, 1)].enumerated() {
                            let value = x[((n * height + 2 * oy + dy) * width + 2 * ox + dx) * channels + c]
                            if best < 0 || value > bestValue || value.isNaN {
                                best = slot
                                bestValue = value
                            }
                        }
                        output.append(bestValue)
                        window.append(Int32(best))
                    }
                }
            }
        }
        return (output, window)
    }

    func testChannelsLastMaxPoolMatchesReference() {
        for (maps, channels, height, width) in channelsLastShapes {
            let label = "\(maps)x\(height)x\(width)x\(channels)"
            let x = Fixtures.normals(maps * height * width * channels, seed: UInt64(channels * 100 + width))
            let actual = channelsLastMaxPool(x, maps: maps, channels: channels, height: height, width: width)
            let expected = referenceChannelsLastMaxPool(x, maps: maps, channels: channels, height: height, width: width)
            assertExactlyEqual(actual.output, expected.output, label)
            XCTAssertEqual(actual.window, expected.window, label)
        }
    }

    func testChannelsLastMaxPoolTiesAndNaNs() {
        // Per channel a pattern: all equal (slot 0 wins), equal maxima in the last three slots
        // (slot 1), one NaN at a cycling slot (that slot), two NaNs (the later one); in vector
        // lanes and the scalar tail (35 channels).
        let maps = 2
        let channels = 35
        let height = 4
        let width = 6
        var x = [Float](repeating: 0, count: maps * height * width * channels)
        var expected: [Int32] = []
        for n in 0..<maps {
            for oy in 0..<(height / 2) {
                for ox in 0..<(width / 2) {
                    for c in 0..<channels {
                        let at = { (slot: Int) in
                            ((n * height + 2 * oy + slot / 2) * width + 2 * ox + slot % 2) * channels + c
                        }
                        let cycle = (c + ox + oy) % 4
                        switch c % 4 {
                        case 0:
                            for slot in 0..<4 { x[at(slot)] = 1 }
                            expected.append(0)
                        case 1:
                            x[at(0)] = 1
                            for slot in 1..<4 { x[at(slot)] = 3 }
                            expected.append(1)
                        case 2:
                            for slot in 0..<4 { x[at(slot)] = Float(slot) }
                            x[at(cycle)] = .nan
                            expected.append(Int32(cycle))
                        default:
                            let other = (cycle + 2) % 4
                            for slot in 0..<4 { x[at(slot)] = 5 }
                            x[at(cycle)] = .nan
                            x[at(other)] = .nan
                            expected.append(Int32(max(cycle, other)))
                        }
                    }
                }
            }
        }
        let actual = channelsLastMaxPool(x, maps: maps, channels: channels, height: height, width: width)
        XCTAssertEqual(actual.window, expected)
        XCTAssertEqual(
            actual.window,
            referenceChannelsLastMaxPool(x, maps: maps, channels: channels, height: height, width: width).window)
        for (k, slot) in expected.enumerated() where (k % channels) % 4 >= 2 {
            XCTAssertTrue(actual.output[k].isNaN, "output \(k) (slot \(slot)): a NaN vanished")
        }
    }

    func testChannelsLastMaxPoolBackwardRoutesEachGradientToItsWindowSlot() {
        for (maps, channels, height, width) in channelsLastShapes {
            let x = Fixtures.normals(maps * height * width * channels, seed: UInt64(width * 10 + channels))
            let (_, window) = channelsLastMaxPool(x, maps: maps, channels: channels, height: height, width: width)
            let (oh, ow) = (height / 2, width / 2)
            let dy = Fixtures.normals(maps * oh * ow * channels, seed: 98)
            var dx = [Float](repeating: .nan, count: x.count)
            dy.withUnsafeBufferPointer { g in
                window.withUnsafeBufferPointer { w in
                    dx.withUnsafeMutableBufferPointer {
                        PoolingKernels.maxPool2x2ChannelsLastBackward(
                            outputGradient: g, window: w, maps: maps, channels: channels,
                            height: height, width: width, inputGradient: $0)
                    }
                }
            }
            var expected = [Float](repeating: 0, count: x.count)
            let reference = referenceChannelsLastMaxPool(
                x, maps: maps, channels: channels, height: height, width: width)
            for n in 0..<maps {
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        for c in 0..<channels {
                            let o = ((n * oh + oy) * ow + ox) * channels + c
                            let slot = Int(reference.window[o])
                            expected[((n * height + 2 * oy + slot / 2) * width + 2 * ox + slot % 2) * channels + c] =
                                dy[o]
                        }
                    }
                }
            }
            assertExactlyEqual(dx, expected, "\(maps)x\(height)x\(width)x\(channels)")
        }
    }

    func testChannelsLastGlobalAverageForwardAndBackward() {
        for (maps, channels, spatial) in [(3, 5, 63), (2, 16, 1), (2, 35, 49), (1, 128, 9)] {
            let label = "\(maps) maps of \(spatial)x\(channels)"
            let x = Fixtures.normals(maps * spatial * channels, seed: UInt64(spatial + channels))
            var y = [Float](repeating: .nan, count: maps * channels)
            x.withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer {
                    PoolingKernels.globalAverageChannelsLastForward(
                        xp, maps: maps, channels: channels, spatial: spatial, output: $0)
                }
            }
            let means = (0..<(maps * channels)).map { k in
                let (n, c) = (k / channels, k % channels)
                return Reference.sum((0..<spatial).map { x[(n * spatial + $0) * channels + c] }) / Double(spatial)
            }
            assertAllClose(y, means.floats, relative: 1e-5, absolute: 1e-6, label)

            let dy = Fixtures.normals(maps * channels, seed: UInt64(spatial + 1))
            var dx = [Float](repeating: .nan, count: x.count)
            dy.withUnsafeBufferPointer { g in
                dx.withUnsafeMutableBufferPointer {
                    PoolingKernels.globalAverageChannelsLastBackward(
                        outputGradient: g, maps: maps, channels: channels, spatial: spatial, inputGradient: $0)
                }
            }
            let expected = (0..<x.count).map { k in
                Float(Double(dy[(k / (spatial * channels)) * channels + k % channels]) / Double(spatial))
            }
            assertAllClose(dx, expected, relative: 1e-6, absolute: 0, label)
        }
    }
}
