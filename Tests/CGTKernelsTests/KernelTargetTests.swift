import CGTKernels
import XCTest

final class KernelTargetTests: XCTestCase {
    /// The summary names the architecture first and lists exactly the vector units the flags report.
    func testSummaryIsConsistentWithTheFeatureFlags() {
        let suffix = " (CGT_CPU=\(KernelTarget.builtFor))"
        XCTAssertTrue(KernelTarget.summary.hasSuffix(suffix), KernelTarget.summary)
        XCTAssertFalse(["", "unknown"].contains(KernelTarget.builtFor), "Package.swift names the build's CPU")
        let parts = KernelTarget.summary.dropLast(suffix.count).components(separatedBy: ", ")
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
