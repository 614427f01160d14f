import CGTHDF5
import Foundation
import XCTest

@testable import CGTData

/// A file prepared streamed compared with the one prepared in memory.
extension XCTestCase {
    /// `h5dump -p` of the file (layout, filters, attributes, every value to 17 digits), less its file name.
    func dump(_ path: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/h5dump")
        process.arguments = ["-p", "-m", "%.17g", path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "h5dump \(path)")
        return String(decoding: data, as: UTF8.self).split(separator: "\n").dropFirst().joined(separator: "\n")
    }

    func assertSameDatasetFile(
        _ a: String, _ b: String, _ tag: String, file: StaticString = #filePath, line: UInt = #line
    )
        throws
    {
        try withOpenHDF5File(a) { left in
            try withOpenHDF5File(b) { right in
                XCTAssertEqual(
                    try left.root.attributeNames(), try right.root.attributeNames(), tag, file: file, line: line)
                let groups = try left.root.memberNames()
                XCTAssertEqual(groups, try right.root.memberNames(), tag, file: file, line: line)
                for name in groups {
                    let (one, other) = (try left.root.openGroup(name), try right.root.openGroup(name))
                    XCTAssertEqual(
                        try one.memberNames(), try other.memberNames(), "\(tag) /\(name)", file: file, line: line)
                    XCTAssertEqual(
                        try one.intArrayAttribute(DatasetLayout.Attribute.classCounts),
                        try other.intArrayAttribute(DatasetLayout.Attribute.classCounts), file: file, line: line)
                    let (x, y) = (
                        try one.openDataset(DatasetLayout.features), try other.openDataset(DatasetLayout.features)
                    )
                    XCTAssertEqual(x.shape, y.shape, "\(tag) /\(name)/x", file: file, line: line)
                    let (bits, otherBits) = (
                        try x.readAll(as: Float.self).map(\.bitPattern), try y.readAll(as: Float.self).map(\.bitPattern)
                    )
                    let differing = bits.indices.first { $0 >= otherBits.count || bits[$0] != otherBits[$0] }
                    XCTAssertNil(
                        differing, "\(tag) /\(name)/x differs at value \(differing ?? 0)", file: file, line: line)
                    XCTAssertEqual(
                        try one.openDataset(DatasetLayout.labels).readAll(as: Int32.self),
                        try other.openDataset(DatasetLayout.labels).readAll(as: Int32.self), file: file, line: line)
                    XCTAssertEqual(
                        try one.openDataset(DatasetLayout.sourceIndex).readAll(as: Int64.self),
                        try other.openDataset(DatasetLayout.sourceIndex).readAll(as: Int64.self), file: file, line: line
                    )
                }
            }
        }
        let (left, right) = (try dump(a), try dump(b))
        XCTAssertGreaterThan(left.count, 1_000, tag, file: file, line: line)
        XCTAssertTrue(left == right, "\(tag): h5dump of \(a) and \(b) differ", file: file, line: line)
    }
}
