import _CGTTargetInfo

/// Which vector units the kernels were compiled for, so that benchmarks can say what they measured.
///
/// Without `-target-cpu native` (see `Package.swift`), swiftc targets baseline x86-64 and every
/// fused multiply-add becomes a libm call per lane.
public enum KernelTarget {
    public static var hasFMA: Bool { cgt_target_has_fma() != 0 }
    public static var hasAVX2: Bool { cgt_target_has_avx2() != 0 }
    public static var hasAVX512F: Bool { cgt_target_has_avx512f() != 0 }

    /// A one-line summary such as `x86_64, AVX-512F, AVX2, FMA`.
    public static var summary: String {
        #if arch(x86_64)
        var parts = ["x86_64"]
        #elseif arch(arm64)
        var parts = ["arm64"]
        #else
        var parts = ["unknown architecture"]
        #endif
        if hasAVX512F { parts.append("AVX-512F") }
        if hasAVX2 { parts.append("AVX2") }
        if hasFMA { parts.append("FMA") }
        if parts.count == 1 { parts.append("baseline vector units (built with CGT_PORTABLE=1?)") }
        return parts.joined(separator: ", ")
    }
}
