import CBLAS

/// Row-major matrix products through OpenBLAS `cblas_sgemm`.
public enum MatrixMultiply {
    /// Whether an operand is used as stored or transposed.
    public enum Operand { case plain, transposed }

    /// C[m, n] = alpha * op(A)[m, k] * op(B)[k, n] + beta * C, all row-major.
    ///
    /// `lda`, `ldb` and `ldc` default to the packed row lengths of the stored matrices.
    /// Wraps `cblas_sgemm`.
    @inlinable
    public static func gemm(
        _ opA: Operand, _ opB: Operand, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int? = nil,
        b: UnsafePointer<Float>, ldb: Int? = nil,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int? = nil
    ) {
        let storedA = opA == .plain ? k : m
        let storedB = opB == .plain ? n : k
        cblas_sgemm(
            CblasRowMajor,
            opA == .plain ? CblasNoTrans : CblasTrans,
            opB == .plain ? CblasNoTrans : CblasTrans,
            Int32(m), Int32(n), Int32(k), alpha,
            a, Int32(lda ?? storedA), b, Int32(ldb ?? storedB),
            beta, c, Int32(ldc ?? n))
    }

    /// Sets the number of threads OpenBLAS uses in this process.
    ///
    /// cgt runs one rank per core, so the default is one thread: more would oversubscribe
    /// the cores the other ranks use. Wraps `openblas_set_num_threads`.
    public static func setThreadCount(_ count: Int) {
        openblas_set_num_threads(Int32(max(1, count)))
    }

    /// The number of threads OpenBLAS uses now. Wraps `openblas_get_num_threads`.
    public static var threadCount: Int { Int(openblas_get_num_threads()) }
}
