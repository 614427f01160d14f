import CDNNL

/// The CPU engine and the stream primitives run on: one of each per process.
///
/// cgt runs one rank per core and executes primitives one after another, so a single in-order
/// stream is all it needs; `execute` waits for each primitive, which on the CPU engine costs
/// nothing (CPU primitives finish before `dnnl_primitive_execute` returns).
public final class DNNLEngine: @unchecked Sendable {
    public let engine: dnnl_engine_t
    public let stream: dnnl_stream_t

    /// The process's engine, created on first use.
    public static let cpu: DNNLEngine = {
        do { return try DNNLEngine() } catch { preconditionFailure("\(error)") }
    }()

    private init() throws {
        var engine: dnnl_engine_t?
        try check(dnnl_engine_create(&engine, dnnl_cpu, 0), "dnnl_engine_create", "the CPU engine")
        var stream: dnnl_stream_t?
        let status = dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue)
        if status != dnnl_success { dnnl_engine_destroy(engine) }
        try check(status, "dnnl_stream_create", "the CPU stream")
        self.engine = engine!
        self.stream = stream!
    }

    deinit {
        dnnl_stream_destroy(stream)
        dnnl_engine_destroy(engine)
    }
}

/// What oneDNN runs on: its version, the instruction set its kernels dispatch to, its threads.
public enum DNNLRuntime {
    /// "2.6.3".
    public static var version: String {
        guard let v = dnnl_version()?.pointee else { return "unknown" }
        return "\(v.major).\(v.minor).\(v.patch)"
    }

    /// The instruction set oneDNN's JIT kernels use on this CPU, as oneDNN names its levels.
    ///
    /// oneDNN reads the CPU's feature flags (not its vendor or model), so an AVX-512 CPU it has
    /// never heard of still gets AVX-512 kernels; `ONEDNN_MAX_CPU_ISA` lowers the level.
    /// AMX and the VNNI/bf16 levels add integer and bf16 instructions only: float32 work runs
    /// on the AVX-512 core kernels at those levels.
    public static var instructionSet: String {
        let isa = dnnl_get_effective_cpu_isa()
        switch isa {
        case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx"
        case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16"
        case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni"
        case dnnl_cpu_isa_avx512_core: return "avx512_core"
        case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni"
        case dnnl_cpu_isa_avx2: return "avx2"
        case dnnl_cpu_isa_avx: return "avx"
        case dnnl_cpu_isa_sse41: return "sse41"
        default: return "isa 0x\(String(isa.rawValue, radix: 16))"
        }
    }

    /// The vector width in bits of oneDNN's float32 kernels at `instructionSet`.
    public static var vectorBits: Int {
        let isa = dnnl_get_effective_cpu_isa().rawValue
        if isa & dnnl_cpu_isa_avx512_core.rawValue == dnnl_cpu_isa_avx512_core.rawValue { return 512 }
        if isa & dnnl_cpu_isa_avx.rawValue == dnnl_cpu_isa_avx.rawValue { return 256 }
        return 128
    }

    /// Sets the threads of oneDNN's matrix products and primitives (OpenMP's, since Debian's
    /// oneDNN runs on OpenMP).
    ///
    /// cgt runs one rank per core, so the default is one thread: more would oversubscribe the
    /// cores the other ranks use.
    public static func setThreadCount(_ count: Int) {
        omp_set_num_threads(Int32(max(1, count)))
    }

    /// The threads oneDNN uses now.
    public static var threadCount: Int { Int(omp_get_max_threads()) }

    /// One line for benchmarks: "oneDNN 2.6.3, avx512_core_amx (512-bit float32 kernels), 1 thread".
    public static var summary: String {
        let threads = threadCount
        return
            "oneDNN \(version), \(instructionSet) (\(vectorBits)-bit float32 kernels), \(threads) thread\(threads == 1 ? "" : "s")"
    }
}
