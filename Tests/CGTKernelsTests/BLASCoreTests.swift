@testable import CGTKernels
import XCTest

final class BLASCoreTests: XCTestCase {
    private let emeraldRapids: Set<Substring> = ["sse2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd", "avx512_fp16"]
    private let haswell: Set<Substring> = ["sse2", "avx", "avx2", "fma"]
    private let sandyBridge: Set<Substring> = ["sse2", "avx"]

    /// Only a fallback to kernels without AVX2 is replaced, by the best core the CPU can run.
    func testReplacesOnlyAFallbackBelowAVX2() {
        XCTAssertEqual(BLASCore.replacement(forCore: "prescott", cpuFlags: emeraldRapids), "SkylakeX")
        XCTAssertEqual(BLASCore.replacement(forCore: "Prescott", cpuFlags: haswell), "Haswell")
        XCTAssertEqual(BLASCore.replacement(forCore: "sandybridge", cpuFlags: emeraldRapids), "SkylakeX")
        XCTAssertNil(BLASCore.replacement(forCore: "prescott", cpuFlags: sandyBridge), "no better core for an AVX-only CPU")
        XCTAssertNil(BLASCore.replacement(forCore: "zen", cpuFlags: emeraldRapids), "a core chosen knowingly stays")
        XCTAssertNil(BLASCore.replacement(forCore: "haswell", cpuFlags: emeraldRapids))
        XCTAssertNil(BLASCore.replacement(forCore: "skylakex", cpuFlags: emeraldRapids))
        XCTAssertNil(BLASCore.replacement(forCore: "armv8", cpuFlags: emeraldRapids), "unknown names are left alone")
        XCTAssertNil(BLASCore.replacement(forCore: "prescott", cpuFlags: ["avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"]),
                     "AVX-512 without FMA is no ground for SkylakeX or Haswell")
    }

    /// The flags come from this machine's /proc/cpuinfo and agree with what the kernels were built for.
    func testReadsThisMachinesFlags() throws {
        #if os(Linux) && arch(x86_64)
        let flags = BLASCore.cpuFlags()
        XCTAssertTrue(flags.contains("sse2"), "\(flags.sorted().prefix(8))")
        if KernelTarget.hasFMA { XCTAssertTrue(flags.contains("fma")) }
        if KernelTarget.hasAVX512F { XCTAssertTrue(flags.contains("avx512f")) }
        #else
        throw XCTSkip("reads /proc/cpuinfo on x86-64 Linux")
        #endif
    }
}
