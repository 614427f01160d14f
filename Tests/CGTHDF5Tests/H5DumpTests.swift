import CGTHDF5
import CGTTestSupport
import XCTest

/// Checks with HDF5's own `h5dump` that written files are readable by other programs.
final class H5DumpTests: XCTestCase {
    private let h5dump = "/usr/bin/h5dump"

    func testH5DumpReadsDataAndSeesVariableLengthUTF8Strings() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: h5dump), "h5dump is not installed")
        let path = try makeTemporaryDirectory(self).appendingPathComponent("dump.h5").path
        try writeHDF5Atomically(to: path) { file in
            try file.root.setAttribute("title", "Λ class é")
            try file.root.writeDataset("train/y", [Int64(4), 5, 6], shape: [3], chunkRows: 2, deflateLevel: 1)
        }

        let attributes = try runTool(h5dump, ["-A", path])
        XCTAssertEqual(attributes.status, 0, attributes.output)
        let title = try XCTUnwrap(attributes.output.range(of: "ATTRIBUTE \"title\""), attributes.output)
        let block = attributes.output[title.upperBound...].prefix(400)
        let compact = block.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        XCTAssertTrue(compact.contains("H5T_STRING { STRSIZE H5T_VARIABLE;"), compact)
        XCTAssertTrue(compact.contains("CSET H5T_CSET_UTF8;"), compact)
        let quoted = try XCTUnwrap(block.split(separator: "\"").dropFirst().first, String(block))
        XCTAssertEqual(h5dumpStringBytes(quoted), Array("Λ class é".utf8), String(quoted))

        let data = try runTool(h5dump, ["-d", "/train/y", path])
        XCTAssertEqual(data.status, 0, data.output)
        let values = data.output.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        XCTAssertTrue(values.contains("DATA { (0): 4, 5, 6 }"), values)
    }

    /// h5dump prints bytes outside ASCII as octal escapes of the sign-extended C `char`
    /// ("\\37777777716" for 0xCE); this recovers the bytes.
    private func h5dumpStringBytes(_ text: Substring) -> [UInt8] {
        var bytes: [UInt8] = []
        var rest = text.utf8[...]
        while let first = rest.first {
            rest = rest.dropFirst()
            guard first == UInt8(ascii: "\\") else {
                bytes.append(first)
                continue
            }
            let digits = rest.prefix { (UInt8(ascii: "0")...UInt8(ascii: "7")).contains($0) }
            rest = rest.dropFirst(digits.count)
            let value = digits.reduce(UInt64(0)) { $0 * 8 + UInt64($1 - UInt8(ascii: "0")) }
            bytes.append(UInt8(truncatingIfNeeded: value))
        }
        return bytes
    }
}
