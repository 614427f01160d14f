import CGTKernels
import XCTest

final class KernelTargetTests: XCTestCase {
    /// The summary names the architecture first and lists exactly the vector units the flags report.
    func testSummaryIsConsistentWithTheFeatureFlags() {
        let parts = KernelTarget.summary.components(separatedBy: ", ")
        #if arch(x86_64)
        XCTAssertEqual(parts.first, "x86_64")
        #elseif arch(arm64)
        XCTAssertEqual(parts.first, "arm64")
        #endif
        XCTAssertEqual(parts.contains("FMA"), KernelTarget.hasFMA)
        XCTAssertEqual(parts.contains("AVX2"), KernelTarget.hasAVX2)
        XCTAssertEqual(parts.contains("AVX-512F"), KernelTarget.hasAVX512F)
        let anyUnit = KernelTarget.hasFMA || KernelTarget.hasAVX2 || KernelTarget.hasAVX512F
        XCTAssertEqual(KernelTarget.summary.contains("baseline"), !anyUnit)
    }
}
