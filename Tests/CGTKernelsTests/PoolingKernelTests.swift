import CGTKernels
import CGTTestSupport
import XCTest

final class PoolingKernelTests: XCTestCase {
    /// (planes, height, width): odd sides (a dropped row or column), 2x2, one output column, an
    /// output row of 18 (one 16-lane vector and a tail) and of 32 (vectors only).
    let planeShapes = [(6, 7, 9), (2, 2, 2), (3, 5, 3), (2, 5, 37), (1, 4, 64), (4, 3, 33), (3, 4, 28), (2, 6, 14), (2, 4, 50)]

    private func maxPool(_ x: [Float], planes: Int, height: Int, width: Int) -> (output: [Float], argmax: [Int32]) {
        let count = planes * (height / 2) * (width / 2)
        var output = [Float](repeating: .nan, count: count)
        var argmax = [Int32](repeating: -1, count: count)
        x.withUnsafeBufferPointer { xp in
            output.withUnsafeMutableBufferPointer { y in
                argmax.withUnsafeMutableBufferPointer {
                    PoolingKernels.maxPool2x2Forward(xp, planes: planes, height: height, width: width, output: y, argmax: $0)
                }
            }
        }
        return (output, argmax)
    }

    /// The maximum of each window and where it is (the first of equal values in row-major window order).
    private func referenceMaxPool(_ x: [Float], planes: Int, height: Int, width: Int) -> (output: [Float], argmax: [Int32]) {
        var output: [Float] = [], argmax: [Int32] = []
        for p in 0..<planes {
            for oy in 0..<(height / 2) {
                for ox in 0..<(width / 2) {
                    var bestIndex = -1
                    for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                        let index = (2 * oy + dy) * width + 2 * ox + dx
                        if bestIndex < 0 || x[p * height * width + index] > x[p * height * width + bestIndex] { bestIndex = index }
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

    func testMaxPoolTiesGoToTheFirstValueInTheWindow() {
        // Equal values everywhere, then equal maxima in the last three positions of each window,
        // in the vector body (widths 18 and 40) and in the scalar tail (width 6).
        for width in [6, 18, 40] {
            let flat = [Float](repeating: 1, count: 2 * width)
            XCTAssertEqual(maxPool(flat, planes: 1, height: 2, width: width).argmax, (0..<(width / 2)).map { Int32(2 * $0) })
            var lateTie = [Float](repeating: 0, count: 2 * width)
            for column in stride(from: 1, to: width, by: 2) { lateTie[column] = 3 }
            for column in 0..<width { lateTie[width + column] = 3 }
            XCTAssertEqual(maxPool(lateTie, planes: 1, height: 2, width: width).argmax, (0..<(width / 2)).map { Int32(2 * $0 + 1) })
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
