import CDNNL
import CGTDNNL

/// Row-major matrix products through oneDNN's `dnnl_sgemm`.
///
/// oneDNN picks its kernels from the CPU's feature flags, so AVX-512 CPUs get AVX-512 kernels
/// whatever their vendor or model. Against Debian's OpenBLAS 0.3.21 on the paper's MLP and
/// im2col shapes, `dnnl_sgemm` was faster on every shape, on an AVX-512 Xeon and by more on an
/// AMD EPYC, where OpenBLAS runs its AVX2 kernels (RESULTS.md, "Kernel and reducer choices").
/// So every product in cgt is oneDNN's and OpenBLAS is not linked.
public enum MatrixMultiply {
    /// Whether an operand is used as stored or transposed.
    public enum Operand: Sendable { case plain, transposed }

    /// C[m, n] = alpha * op(A)[m, k] * op(B)[k, n] + beta * C, all row-major.
    ///
    /// `lda`, `ldb` and `ldc` default to the packed row lengths of the stored matrices.
    /// Wraps `dnnl_sgemm`, whose operands are row-major.
    @inlinable
    public static func gemm(
        _ opA: Operand, _ opB: Operand, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int? = nil,
        b: UnsafePointer<Float>, ldb: Int? = nil,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int? = nil
    ) {
        let storedA = opA == .plain ? k : m
        let storedB = opB == .plain ? n : k
        let plain = CChar(bitPattern: UInt8(ascii: "N"))
        let transposed = CChar(bitPattern: UInt8(ascii: "T"))
        let status = dnnl_sgemm(
            opA == .plain ? plain : transposed, opB == .plain ? plain : transposed,
            dnnl_dim_t(m), dnnl_dim_t(n), dnnl_dim_t(k), alpha,
            a, dnnl_dim_t(lda ?? storedA), b, dnnl_dim_t(ldb ?? storedB),
            beta, c, dnnl_dim_t(ldc ?? n))
        precondition(status == dnnl_success, "dnnl_sgemm \(m)x\(n)x\(k) failed with status \(status.rawValue)")
    }
}
