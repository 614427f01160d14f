import _CGTTargetInfo

/// Which vector units the kernels were compiled for, so that benchmarks can say what they measured.
///
/// `CGT_CPU` (see `Package.swift`) chooses them: the build machine's (`native`, the default),
/// `x86-64-v3` (AVX2 + FMA) for the nodes of a mixed cluster; at baseline x86-64 every fused
/// multiply-add becomes a libm call per lane.
public enum KernelTarget {
    public static var hasFMA: Bool { cgt_target_has_fma() != 0 }
    public static var hasAVX2: Bool { cgt_target_has_avx2() != 0 }
    public static var hasAVX512F: Bool { cgt_target_has_avx512f() != 0 }

    /// The `CGT_CPU` the build was made with ("native", "x86-64-v3").
    public static var builtFor: String { String(cString: cgt_built_cpu_name()) }

    /// A one-line summary such as `x86_64, AVX-512F, AVX2, FMA (CGT_CPU=native)`.
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
        if parts.count == 1 { parts.append("baseline vector units") }
        return parts.joined(separator: ", ") + " (CGT_CPU=\(builtFor))"
    }
}
