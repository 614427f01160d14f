import CGTKernels
import CGTTestSupport
import XCTest

final class PoolingKernelTests: XCTestCase {
    /// (planes, height, width): odd sides (a dropped row or column), 2x2, one output column,
    /// output rows narrower than a vector (3, 4, 7: one vector spilling into the next rows, the
    /// last rows scalar), of 8 (one vector), 14, 16, 18 and 25 (vectors, the last overlapping),
    /// and the paper CNN's 28x28, 14x14 and 7x7 planes.
    let planeShapes = [(6, 7, 9), (2, 2, 2), (3, 5, 3), (2, 5, 37), (1, 4, 64), (4, 3, 33), (3, 4, 28), (2, 6, 14), (2, 4, 50),
                       (5, 2, 16), (3, 6, 8), (4, 28, 28), (9, 14, 14), (11, 7, 7), (2, 3, 51)]

    /// Runs the kernel on buffers followed by sentinels, and checks that it wrote nothing past its output.
    private func maxPool(_ x: [Float], planes: Int, height: Int, width: Int,
                         file: StaticString = #filePath, line: UInt = #line) -> (output: [Float], argmax: [Int32]) {
        let count = planes * (height / 2) * (width / 2), guardCount = 16
        var output = [Float](repeating: .nan, count: count + guardCount)
        var argmax = [Int32](repeating: -1, count: count + guardCount)
        x.withUnsafeBufferPointer { xp in
            output.withUnsafeMutableBufferPointer { y in
                argmax.withUnsafeMutableBufferPointer { a in
                    PoolingKernels.maxPool2x2Forward(xp, planes: planes, height: height, width: width,
                                                     output: UnsafeMutableBufferPointer(rebasing: y[..<count]),
                                                     argmax: UnsafeMutableBufferPointer(rebasing: a[..<count]))
                }
            }
        }
        XCTAssertTrue(output[count...].allSatisfy(\.isNaN) && argmax[count...].allSatisfy { $0 == -1 },
                      "\(planes)x\(height)x\(width): wrote past the output", file: file, line: line)
        return (Array(output[..<count]), Array(argmax[..<count]))
    }

    /// The maximum of each window and where it is (the first of equal values in row-major window
    /// order; a NaN beats any number and a later NaN an earlier one, as PyTorch's CPU kernel).
    private func referenceMaxPool(_ x: [Float], planes: Int, height: Int, width: Int) -> (output: [Float], argmax: [Int32]) {
        var output: [Float] = [], argmax: [Int32] = []
        for p in 0..<planes {
            for oy in 0..<(height / 2) {
                for ox in 0..<(width / 2) {
                    var bestIndex = -1
                    for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                        let index = (2 * oy + dy) * width + 2 * ox + dx
                        let value = x[p * height * width + index]
                        if bestIndex < 0 || value > x[p * height * width + bestIndex] || value.isNaN { bestIndex = index }
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
            let planes = 3, height = 4
            var x = Fixtures.normals(planes * height * width, seed: UInt64(width))
            var twoNaNs = x
            let windows = [(0, 0), (0, 1), (1, 0), (1, 1)]
            var window = 0
            for p in 0..<planes {
                for oy in 0..<(height / 2) {
                    for ox in 0..<(width / 2) {
                        let at = { (k: Int) in p * height * width + (2 * oy + windows[k].0) * width + 2 * ox + windows[k].1 }
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
            XCTAssertEqual(maxPool(flat, planes: planes, height: 2, width: width).argmax, Array([[Int32]](repeating: firstColumns, count: planes).joined()))
            var lateTie = [Float](repeating: 0, count: 2 * width)
            for column in stride(from: 1, to: width, by: 2) { lateTie[column] = 3 }
            for column in 0..<width { lateTie[width + column] = 3 }
            let secondColumns = firstColumns.map { $0 + 1 }
            XCTAssertEqual(maxPool(Array([[Float]](repeating: lateTie, count: planes).joined()), planes: planes, height: 2, width: width).argmax,
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
                        PoolingKernels.maxPool2x2Backward(outputGradient: g, argmax: a, planes: planes, height: height, width: width, inputGradient: $0)
                    }
                }
            }
            // Reference: for each input, the gradient of the output whose window maximum it is, else 0.
            var expected = [Float](repeating: 0, count: x.count)
            let reference = referenceMaxPool(x, planes: planes, height: height, width: width)
            for p in 0..<planes {
                for o in 0..<outputs { expected[p * height * width + Int(reference.argmax[p * outputs + o])] = dy[p * outputs + o] }
            }
            assertExactlyEqual(dx, expected, "\(planes)x\(height)x\(width)")
        }
    }

    func testGlobalAverageForwardAndBackward() {
        for (planes, spatial) in [(6, 63), (3, 1), (2, 16), (4, 49), (1, 33)] {
            let x = Fixtures.normals(planes * spatial, seed: UInt64(spatial))
            var y = [Float](repeating: .nan, count: planes)
            x.withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer { PoolingKernels.globalAverageForward(xp, planes: planes, spatial: spatial, output: $0) }
            }
            let means = (0..<planes).map { p in Reference.sum(Array(x[(p * spatial)..<((p + 1) * spatial)])) / Double(spatial) }
            assertAllClose(y, means.floats, relative: 1e-5, absolute: 1e-6, "mean of \(planes) planes of \(spatial)")

            let dy = Fixtures.normals(planes, seed: UInt64(spatial + 1))
            var dx = [Float](repeating: .nan, count: planes * spatial)
            dy.withUnsafeBufferPointer { g in
                dx.withUnsafeMutableBufferPointer { PoolingKernels.globalAverageBackward(outputGradient: g, planes: planes, spatial: spatial, inputGradient: $0) }
            }
            let expected = (0..<(planes * spatial)).map { Float(Double(dy[$0 / spatial]) / Double(spatial)) }
            assertAllClose(dx, expected, relative: 1e-6, absolute: 0, "spread of \(planes) planes of \(spatial)")
        }
    }
}
