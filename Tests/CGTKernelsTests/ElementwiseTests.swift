import CGTKernels
import CGTTestSupport
import XCTest

/// Each element-wise kernel does one Float operation per element, so it must match the
/// scalar loop exactly, in the vector body and in the tail.
final class ElementwiseTests: XCTestCase {
    /// addBias adds bias[c] to column c of every row.
    func testAddBiasMatchesScalarLoop() {
        for columns in kernelSizes {
            for rows in [1, 3] {
                let bias = Fixtures.normals(columns, seed: 11)
                let start = Fixtures.normals(rows * columns, seed: 12)
                var expected = start
                for r in 0..<rows {
                    for c in 0..<columns { expected[r * columns + c] = start[r * columns + c] + bias[c] }
                }
                var y = start
                bias.withUnsafeBufferPointer { b in
                    y.withUnsafeMutableBufferPointer { Elementwise.addBias(b, to: $0, rows: rows) }
                }
                assertExactlyEqual(y, expected, "rows \(rows), columns \(columns)")
            }
        }
    }

    /// reluForward is max(x, 0), including at exactly 0 and -0.
    func testReluForwardMatchesScalarLoop() {
        for n in kernelSizes {
            var x = Fixtures.normals(n, seed: UInt64(n))
            if n > 3 {
                x[1] = 0
                x[2] = -0.0
                x[n - 1] = -1e-30
            }
            var expected = [Float](repeating: .nan, count: n)
            for i in 0..<n { expected[i] = x[i] > 0 ? x[i] : 0 }
            var y = [Float](repeating: .nan, count: n)
            x.withUnsafeBufferPointer { src in y.withUnsafeMutableBufferPointer { Elementwise.reluForward(src, $0) } }
            assertExactlyEqual(y, expected, "n = \(n)")
        }
    }

    /// A NaN passes through the ReLU in the vector body and in the tail alike (as PyTorch's
    /// relu and Swift's `max(x, 0)` keep it), so that the step's non-finite check sees it.
    func testReluForwardKeepsNaN() {
        let n = 37
        var x = Fixtures.normals(n, seed: 9)
        for i in [0, 5, 17, 36] { x[i] = .nan }
        var y = [Float](repeating: 1, count: n)
        x.withUnsafeBufferPointer { src in y.withUnsafeMutableBufferPointer { Elementwise.reluForward(src, $0) } }
        for i in 0..<n {
            if x[i].isNaN {
                XCTAssertTrue(y[i].isNaN, "lane \(i)")
            } else {
                XCTAssertEqual(y[i], max(x[i], 0), "lane \(i)")
            }
        }
    }

    /// reluBackward passes dy where the output is strictly positive and zeroes it elsewhere.
    func testReluBackwardMatchesScalarLoop() {
        for n in kernelSizes {
            var output = Fixtures.normals(n, seed: UInt64(100 + n)).map { max($0, 0) }
            if n > 2 {
                output[n - 1] = 1e-30
                output[0] = 0
            }
            let dy = Fixtures.normals(n, seed: UInt64(200 + n))
            var expected = [Float](repeating: .nan, count: n)
            for i in 0..<n { expected[i] = output[i] > 0 ? dy[i] : 0 }
            var dx = [Float](repeating: .nan, count: n)
            output.withUnsafeBufferPointer { y in
                dy.withUnsafeBufferPointer { g in
                    dx.withUnsafeMutableBufferPointer {
                        Elementwise.reluBackward(output: y, outputGradient: g, inputGradient: $0)
                    }
                }
            }
            assertExactlyEqual(dx, expected, "n = \(n)")
            if n > 2 { XCTAssertEqual(dx[n - 1], dy[n - 1], "a tiny positive output still passes its gradient") }
        }
    }

    /// add accumulates x into y.
    func testAddMatchesScalarLoop() {
        for n in kernelSizes {
            let x = Fixtures.normals(n, seed: 21)
            let start = Fixtures.normals(n, seed: 22)
            var expected = start
            for i in 0..<n { expected[i] = start[i] + x[i] }
            var y = start
            x.withUnsafeBufferPointer { src in y.withUnsafeMutableBufferPointer { Elementwise.add(src, to: $0) } }
            assertExactlyEqual(y, expected, "n = \(n)")
        }
    }

    /// add touches only the first x.count elements of a longer destination.
    func testAddLeavesTheRestOfALongerDestinationAlone() {
        let x = Fixtures.normals(17, seed: 23)
        var y = [Float](repeating: 5, count: 40)
        x.withUnsafeBufferPointer { src in y.withUnsafeMutableBufferPointer { Elementwise.add(src, to: $0) } }
        assertExactlyEqual(Array(y[..<17]), x.map { $0 + 5 })
        assertExactlyEqual(Array(y[17...]), [Float](repeating: 5, count: 23))
    }

    /// scale multiplies every element by alpha.
    func testScaleMatchesScalarLoop() {
        for n in kernelSizes {
            for alpha: Float in [0.37, -2, 0] {
                let start = Fixtures.normals(n, seed: 31)
                var expected = start
                for i in 0..<n { expected[i] = start[i] * alpha }
                var y = start
                y.withUnsafeMutableBufferPointer { Elementwise.scale($0, by: alpha) }
                assertExactlyEqual(y, expected, "n = \(n), alpha = \(alpha)")
            }
        }
    }

    /// multiply is the element-wise product x * mask.
    func testMultiplyMatchesScalarLoop() {
        for n in kernelSizes {
            let x = Fixtures.normals(n, seed: 41)
            let mask = Fixtures.uniforms(n, seed: 42, 0, 2)
            var expected = [Float](repeating: .nan, count: n)
            for i in 0..<n { expected[i] = x[i] * mask[i] }
            var y = [Float](repeating: .nan, count: n)
            x.withUnsafeBufferPointer { a in
                mask.withUnsafeBufferPointer { m in
                    y.withUnsafeMutableBufferPointer { Elementwise.multiply(a, by: m, into: $0) }
                }
            }
            assertExactlyEqual(y, expected, "n = \(n)")
        }
    }
}
