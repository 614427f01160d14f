import CGTKernels
import CGTTestSupport
import XCTest

final class ReductionTests: XCTestCase {
    /// Small whole numbers add exactly in Float, so any dropped or repeated element shows.
    private func wholeNumbers(_ n: Int, modulus: Int, offset: Int = 0) -> [Float] {
        (0..<n).map { Float(($0 * 7 + offset) % modulus + 1) }
    }

    /// sum over whole numbers equals the exact total, in the body, the 64-wide blocks and the tail.
    func testSumIsExactOnWholeNumbers() {
        for n in kernelSizes + [0, 63, 64, 65, 127, 128, 129] {
            let x = wholeNumbers(n, modulus: 9)
            var expected = 0
            for i in 0..<n { expected += Int(x[i]) }
            let total = x.withUnsafeBufferPointer { Reductions.sum($0) }
            XCTAssertEqual(total, Float(expected), "n = \(n)")
        }
    }

    /// sum of normal values is within a few roundings (relative to sum |x|) of the Double sum.
    func testSumMatchesDoubleReference() {
        for n in kernelSizes {
            let x = Fixtures.normals(n, seed: UInt64(n))
            let total = x.withUnsafeBufferPointer { Reductions.sum($0) }
            let expected = Reference.sum(x)
            XCTAssertEqual(Double(total), expected, accuracy: 1e-6 * Reference.absoluteSum(x) + 1e-12, "n = \(n)")
        }
    }

    /// dot over whole numbers equals the exact total.
    func testDotIsExactOnWholeNumbers() {
        for n in kernelSizes + [0, 31, 32, 48, 63] {
            let x = wholeNumbers(n, modulus: 9)
            let y = wholeNumbers(n, modulus: 5, offset: 3)
            var expected = 0
            for i in 0..<n { expected += Int(x[i]) * Int(y[i]) }
            let product = x.withUnsafeBufferPointer { a in y.withUnsafeBufferPointer { Reductions.dot(a, $0) } }
            XCTAssertEqual(product, Float(expected), "n = \(n)")
        }
    }

    /// dot of normal vectors is within a few roundings (relative to sum |x y|) of the Double dot product.
    func testDotMatchesDoubleReference() {
        for n in kernelSizes {
            let x = Fixtures.normals(n, seed: 1)
            let y = Fixtures.normals(n, seed: 2)
            let product = x.withUnsafeBufferPointer { a in y.withUnsafeBufferPointer { Reductions.dot(a, $0) } }
            var scale = 0.0
            for i in 0..<n { scale += abs(Double(x[i]) * Double(y[i])) }
            XCTAssertEqual(Double(product), Reference.dot(x, y), accuracy: 1e-6 * scale + 1e-12, "n = \(n)")
        }
    }

    /// columnSums sums each column over the rows and overwrites whatever the output held.
    func testColumnSumsMatchesScalarLoop() {
        for columns in kernelSizes {
            for rows in [1, 5] {
                let x = Fixtures.normals(rows * columns, seed: UInt64(columns * 10 + rows))
                var expected = [Double](repeating: 0, count: columns)
                var scale = [Double](repeating: 0, count: columns)
                for r in 0..<rows {
                    for c in 0..<columns {
                        expected[c] += Double(x[r * columns + c])
                        scale[c] += abs(Double(x[r * columns + c]))
                    }
                }
                var sums = [Float](repeating: 1000, count: columns)
                x.withUnsafeBufferPointer { src in
                    sums.withUnsafeMutableBufferPointer { Reductions.columnSums(src, rows: rows, into: $0) }
                }
                for c in 0..<columns {
                    XCTAssertEqual(
                        Double(sums[c]), expected[c], accuracy: 1e-6 * scale[c] + 1e-12,
                        "rows \(rows), columns \(columns), column \(c)")
                }
            }
        }
    }

    /// columnSums over whole numbers is exact.
    func testColumnSumsIsExactOnWholeNumbers() {
        let rows = 3
        let columns = 33
        let x = wholeNumbers(rows * columns, modulus: 11)
        var expected = [Float](repeating: 0, count: columns)
        for r in 0..<rows { for c in 0..<columns { expected[c] += x[r * columns + c] } }
        var sums = [Float](repeating: -1, count: columns)
        x.withUnsafeBufferPointer { src in
            sums.withUnsafeMutableBufferPointer { Reductions.columnSums(src, rows: rows, into: $0) }
        }
        assertExactlyEqual(sums, expected)
    }

    private func rowMax(_ x: [Float], rows: Int, columns: Int) -> (maxima: [Float], indices: [Int32]) {
        var maxima = [Float](repeating: .nan, count: rows)
        var indices = [Int32](repeating: -1, count: rows)
        x.withUnsafeBufferPointer { src in
            maxima.withUnsafeMutableBufferPointer { m in
                indices.withUnsafeMutableBufferPointer {
                    Reductions.rowMax(src, rows: rows, columns: columns, maxima: m, indices: $0)
                }
            }
        }
        return (maxima, indices)
    }

    /// rowMax returns each row's largest value and its index.
    func testRowMaxMatchesScalarLoop() {
        for columns in kernelSizes {
            let rows = 4
            let x = Fixtures.normals(rows * columns, seed: UInt64(columns))
            let result = rowMax(x, rows: rows, columns: columns)
            for r in 0..<rows {
                var best = 0
                for c in 0..<columns where x[r * columns + c] > x[r * columns + best] { best = c }
                XCTAssertEqual(result.indices[r], Int32(best), "columns \(columns), row \(r)")
                XCTAssertEqual(result.maxima[r], x[r * columns + best], "columns \(columns), row \(r)")
            }
        }
    }

    /// On ties rowMax reports the first index holding the maximum.
    func testRowMaxTiesPickTheFirstIndex() {
        let columns = 17
        var x = [Float](repeating: 0, count: 4 * columns)
        // Row 0: maximum 3 at 2, 5 and 16. Row 1: all equal. Row 2: maximum only in the last column.
        // Row 3: maximum at 0 and 16, negative elsewhere.
        x[2] = 3
        x[5] = 3
        x[16] = 3
        for c in 0..<columns { x[columns + c] = -2 }
        x[2 * columns + 16] = 1
        for c in 0..<columns { x[3 * columns + c] = -Float(c + 1) }
        x[3 * columns] = 4
        x[3 * columns + 16] = 4
        let result = rowMax(x, rows: 4, columns: columns)
        XCTAssertEqual(result.indices, [2, 0, 16, 0])
        XCTAssertEqual(result.maxima, [3, -2, 1, 4])
    }
}
