import CGTTestSupport
import Foundation
import XCTest

@testable import CGTTraining

/// The event file's checksum is CRC-32C (Castagnoli), masked as TFRecord masks it.
final class TensorBoardLogTests: XCTestCase {
    func testCRC32CMatchesTheStandardCheckValue() {
        XCTAssertEqual(TensorBoardLog.crc32c(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(TensorBoardLog.crc32c([]), 0)
        XCTAssertEqual(TensorBoardLog.crc32c([UInt8](repeating: 0, count: 32)), 0x8A91_36AA, "RFC 3720 B.4")
    }

    func testMaskingIsTFRecords() {
        let crc = TensorBoardLog.crc32c(Array("123456789".utf8))
        XCTAssertEqual(TensorBoardLog.maskedCRC(Array("123456789".utf8)), ((crc >> 15) | (crc << 17)) &+ 0xa282_ead8)
    }
}
