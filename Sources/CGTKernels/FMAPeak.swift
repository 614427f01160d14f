import Dispatch
import _CGTTargetInfo

/// The fused multiply-add peak of one core: what "fraction of the peak" in benchmarks divides by.
///
/// Twelve independent chains of vector FMAs on the widest vector the kernels are built for
/// (16 floats with AVX-512, 8 with AVX2): an FMA's latency is 4 cycles and a core issues up to
/// two per cycle, so 8 chains keep both units busy and 12 leave margin. Nothing is read from
/// memory, so the figure is the arithmetic units' alone. The loop is assembly
/// (`cgt_fma_chains`), so debug and release builds measure the same instructions.
public enum FMAPeak {
    /// GFLOP/s of one thread (a multiply-add counts 2), the best of `rounds` runs of about 0.1 s;
    /// 0 where the build has no FMA vector unit (`CGT_CPU=x86-64`).
    public static func measure(rounds: Int = 3) -> Double {
        var best = 0.0
        for _ in 0..<max(1, rounds) {
            let start = DispatchTime.now().uptimeNanoseconds
            let flops = cgt_fma_chains(10_000_000)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            best = max(best, flops / seconds / 1e9)
        }
        return best
    }

    /// The vector width in floats `measure` uses.
    public static var lanes: Int { KernelTarget.hasAVX512F ? 16 : 8 }
}
