import CGTKernels
import CGTTestSupport
import XCTest

final class MatrixMultiplyTests: XCTestCase {
    typealias Operand = MatrixMultiply.Operand

    /// C = alpha op(A) op(B) + beta C by the triple loop, reading A and B as stored row-major with
    /// leading dimensions lda and ldb (op(A)[i, p] is A[i, p] or A[p, i]).
    private func naiveGemm(
        _ opA: Operand, _ opB: Operand, m: Int, n: Int, k: Int, alpha: Double, a: [Float], lda: Int,
        b: [Float], ldb: Int, beta: Double, c: [Float], ldc: Int
    ) -> [Double] {
        var out = c.doubles
        for i in 0..<m {
            for j in 0..<n {
                var total = 0.0
                for p in 0..<k {
                    let aValue = opA == .plain ? a[i * lda + p] : a[p * lda + i]
                    let bValue = opB == .plain ? b[p * ldb + j] : b[j * ldb + p]
                    total += Double(aValue) * Double(bValue)
                }
                out[i * ldc + j] = alpha * total + beta * Double(c[i * ldc + j])
            }
        }
        return out
    }

    /// All four transpose combinations with odd m, n, k, with and without alpha and beta.
    func testGemmMatchesTripleLoopForAllTransposes() {
        let combinations: [(Operand, Operand)] = [
            (.plain, .plain), (.plain, .transposed), (.transposed, .plain), (.transposed, .transposed),
        ]
        for (m, n, k) in [(7, 5, 9), (1, 17, 3), (33, 1, 15), (13, 11, 1)] {
            for (opA, opB) in combinations {
                for (alpha, beta): (Float, Float) in [(1, 0), (1.5, 0.5)] {
                    let a = Fixtures.normals(m * k, seed: 1)
                    let b = Fixtures.normals(k * n, seed: 2)
                    let start = Fixtures.normals(m * n, seed: 3)
                    let lda = opA == .plain ? k : m
                    let ldb = opB == .plain ? n : k
                    let expected = naiveGemm(
                        opA, opB, m: m, n: n, k: k, alpha: Double(alpha), a: a, lda: lda,
                        b: b, ldb: ldb, beta: Double(beta), c: start, ldc: n)
                    var c = start
                    c.withUnsafeMutableBufferPointer { cp in
                        MatrixMultiply.gemm(
                            opA, opB, m: m, n: n, k: k, alpha: alpha, a: a, b: b, beta: beta, c: cp.baseAddress!)
                    }
                    assertAllClose(
                        c, expected.floats, relative: 1e-5, absolute: 1e-5,
                        "\(opA) x \(opB), m \(m) n \(n) k \(k), alpha \(alpha) beta \(beta)")
                }
            }
        }
    }

    /// beta = 0 overwrites C, even when C holds NaN (BLAS does not read C then).
    func testBetaZeroIgnoresPreviousContents() {
        let m = 3
        let n = 5
        let k = 7
        let a = Fixtures.normals(m * k, seed: 4)
        let b = Fixtures.normals(k * n, seed: 5)
        var c = [Float](repeating: .nan, count: m * n)
        c.withUnsafeMutableBufferPointer {
            MatrixMultiply.gemm(.plain, .plain, m: m, n: n, k: k, a: a, b: b, c: $0.baseAddress!)
        }
        let expected = naiveGemm(
            .plain, .plain, m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: b, ldb: n,
            beta: 0, c: [Float](repeating: 0, count: m * n), ldc: n)
        assertAllClose(c, expected.floats, relative: 1e-5, absolute: 1e-5)
    }

    /// Explicit leading dimensions address sub-matrices of wider stored matrices and leave the
    /// rest of C untouched.
    func testGemmWithLeadingDimensions() {
        let m = 5
        let n = 3
        let k = 7
        let lda = 11
        let ldb = 9
        let ldc = 6
        for (opA, opB) in [(Operand.plain, Operand.plain), (.transposed, .transposed)] {
            let aRows = opA == .plain ? m : k
            let bRows = opB == .plain ? k : n
            let a = Fixtures.normals(aRows * lda, seed: 6)
            let b = Fixtures.normals(bRows * ldb, seed: 7)
            let start = Fixtures.normals(m * ldc, seed: 8)
            let expected = naiveGemm(
                opA, opB, m: m, n: n, k: k, alpha: 2, a: a, lda: lda, b: b, ldb: ldb,
                beta: -1, c: start, ldc: ldc)
            var c = start
            c.withUnsafeMutableBufferPointer { cp in
                MatrixMultiply.gemm(
                    opA, opB, m: m, n: n, k: k, alpha: 2, a: a, lda: lda, b: b, ldb: ldb,
                    beta: -1, c: cp.baseAddress!, ldc: ldc)
            }
            assertAllClose(c, expected.floats, relative: 1e-5, absolute: 1e-5, "\(opA) x \(opB)")
            for i in 0..<m {
                for j in n..<ldc { XCTAssertEqual(c[i * ldc + j], start[i * ldc + j], "padding at (\(i), \(j))") }
            }
        }
    }
}
