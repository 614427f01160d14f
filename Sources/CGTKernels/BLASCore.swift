import CBLAS

#if canImport(Glibc)
import Glibc
#endif

/// The kernel family ("core") OpenBLAS runs in this process, and a way out when it picked one
/// far below the CPU.
///
/// OpenBLAS built with `DYNAMIC_ARCH` (Debian's is) picks its kernels from the CPU's model number
/// when the library loads. A CPU newer than the library, such as an Emerald Rapids Xeon under
/// Debian's 0.3.21, falls back to Prescott's SSE3 kernels: `cblas_sgemm` then runs about 4 times
/// slower although the CPU has AVX-512. `OPENBLAS_CORETYPE` overrides the choice, but OpenBLAS
/// reads it only while loading, so `relaunchIfCoreFellBack()` re-executes cgt with it set.
public enum BLASCore {
    /// The environment variable that records the core OpenBLAS chose before cgt replaced it.
    static let fallbackVariable = "CGT_OPENBLAS_FALLBACK_CORE"

    /// The core OpenBLAS runs, as it names it (`skylakex`, `haswell`, `prescott`, ...).
    /// Wraps `openblas_get_corename`.
    public static var current: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name).lowercased()
    }

    /// Vector instruction levels, ordered, of OpenBLAS cores and of CPUs.
    enum VectorLevel: Int, Comparable {
        case sse = 0, avx = 1, avx2 = 2, avx512 = 3
        static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
    }

    /// The vector level an OpenBLAS core's kernels use; nil for names not listed here,
    /// which cgt then leaves alone.
    static func level(ofCore name: String) -> VectorLevel? {
        switch name.lowercased() {
        case "skylakex", "cooperlake", "sapphirerapids": return .avx512
        case "haswell", "zen", "excavator": return .avx2
        case "sandybridge", "bulldozer", "piledriver", "steamroller": return .avx
        case "prescott", "core2", "penryn", "dunnington", "nehalem", "atom", "opteron",
            "opteron_sse3", "barcelona", "bobcat", "katmai", "coppermine", "northwood", "banias",
            "generic": return .sse
        default: return nil
        }
    }

    /// The best vector level a CPU with these `/proc/cpuinfo` flags offers to OpenBLAS.
    static func level(ofCPUFlags flags: Set<Substring>) -> VectorLevel {
        if ["avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd", "fma"].allSatisfy(flags.contains) { return .avx512 }
        if ["avx2", "fma"].allSatisfy(flags.contains) { return .avx2 }
        if flags.contains("avx") { return .avx }
        return .sse
    }

    /// The core to ask for instead of `current`, or nil when `current` is fine.
    ///
    /// Only a fallback is replaced: a core without AVX2 on a CPU with AVX2 and FMA. A core that
    /// OpenBLAS chose knowingly (Zen on an AVX-512 Zen 4, say) stays, since it may be the better fit.
    static func replacement(forCore core: String, cpuFlags: Set<Substring>) -> String? {
        guard let coreLevel = level(ofCore: core), coreLevel < .avx2 else { return nil }
        switch level(ofCPUFlags: cpuFlags) {
        case .avx512: return "SkylakeX"
        case .avx2: return "Haswell"
        case .avx, .sse: return nil
        }
    }

    /// The flags of the first processor in `/proc/cpuinfo`; empty where there is no such file.
    static func cpuFlags() -> Set<Substring> {
        #if os(Linux)
        guard let file = fopen("/proc/cpuinfo", "r") else { return [] }
        defer { fclose(file) }
        var line: UnsafeMutablePointer<CChar>?
        var capacity = 0
        defer { free(line) }
        while getline(&line, &capacity, file) > 0, let line {
            let text = String(cString: line)
            guard text.hasPrefix("flags"), let colon = text.firstIndex(of: ":") else { continue }
            return Set(text[text.index(after: colon)...].split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }))
        }
        #endif
        return []
    }

    /// Re-executes this process with `OPENBLAS_CORETYPE` naming a suitable core when OpenBLAS
    /// fell back to one without AVX2 on a CPU that has it; returns only when nothing is to be done
    /// or the re-execution failed.
    ///
    /// Call it first thing in `main`, before MPI or any file is opened: the process keeps its id,
    /// arguments and environment, so mpirun and Slurm see the same rank. A user's own
    /// `OPENBLAS_CORETYPE` is always respected; set it when a tool wraps cgt (valgrind without
    /// `--trace-children`, say), since the restart would leave the tool behind.
    public static func relaunchIfCoreFellBack() {
        #if os(Linux)
        guard getenv("OPENBLAS_CORETYPE") == nil else { return }
        let core = current
        guard let better = replacement(forCore: core, cpuFlags: cpuFlags()) else { return }
        setenv("OPENBLAS_CORETYPE", better, 1)
        setenv(fallbackVariable, core, 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        // Still here: the re-execution failed; run on with the slow kernels and say so.
        unsetenv("OPENBLAS_CORETYPE")
        unsetenv(fallbackVariable)
        fputs("cgt: OpenBLAS runs its \(core) kernels on this CPU and restarting with OPENBLAS_CORETYPE=\(better) failed; set it yourself for faster matrix products\n", stderr)
        #endif
    }

    /// One line for benchmarks: the core, and why it is not OpenBLAS's own choice when cgt
    /// replaced it.
    public static var summary: String {
        guard let fallback = getenv(fallbackVariable).map({ String(cString: $0) }) else { return current }
        return "\(current) (OpenBLAS chose \(fallback) for this CPU; cgt set OPENBLAS_CORETYPE)"
    }
}
