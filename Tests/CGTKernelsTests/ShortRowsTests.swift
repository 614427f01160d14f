@testable import CGTKernels
import CGTTestSupport
import XCTest

final class ShortRowsTests: XCTestCase {
    /// Every length from 0 to 70 (each branch, exact multiples of 4, 8 and 16 and the lengths
    /// between): the run gets the values, and nothing before or after it is touched.
    func testCopyAndFillTouchExactlyTheRun() {
        let source = Fixtures.normals(80, seed: 5)
        for count in 0...70 {
            var copied = [Float](repeating: .nan, count: count + 8)
            var filled = [Float](repeating: .nan, count: count + 8)
            source.withUnsafeBufferPointer { src in
                copied.withUnsafeMutableBufferPointer { ShortRows.copy(src.baseAddress! + 3, to: $0.baseAddress! + 4, count: count) }
            }
            filled.withUnsafeMutableBufferPointer { ShortRows.fill($0.baseAddress! + 4, count: count) }
            assertExactlyEqual(Array(copied[4..<(4 + count)]), Array(source[3..<(3 + count)]), "copy of \(count)")
            XCTAssertEqual(Array(filled[4..<(4 + count)]), [Float](repeating: 0, count: count), "fill of \(count)")
            for outside in Array(0..<4) + Array((4 + count)..<(count + 8)) {
                XCTAssertTrue(copied[outside].isNaN && filled[outside].isNaN, "\(count) values: index \(outside - 4) written")
            }
        }
    }
}
