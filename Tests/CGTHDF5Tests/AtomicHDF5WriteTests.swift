import CGTFiles
import CGTHDF5
import XCTest

final class AtomicHDF5WriteTests: XCTestCase {
    private struct Abort: Error {}

    func testSuccessLeavesOnlyTheTarget() throws {
        let directory = try makeTemporaryDirectory(self)
        let path = directory.appendingPathComponent("checkpoint.h5").path
        let returned = try writeHDF5Atomically(to: path) { file -> Int in
            try file.root.writeDataset("w", [1.0, 2.0], shape: [2])
            return 7
        }
        XCTAssertEqual(returned, 7)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["checkpoint.h5"])
        try withOpenHDF5File(path) { XCTAssertEqual(try $0.root.openDataset("w").readAll(as: Double.self), [1, 2]) }
    }

    func testThrowingBodyLeavesNoFiles() throws {
        let directory = try makeTemporaryDirectory(self)
        let path = directory.appendingPathComponent("checkpoint.h5").path
        XCTAssertThrowsError(
            try writeHDF5Atomically(to: path) { file in
                try file.root.setAttribute("partial", 1)
                throw Abort()
            }
        ) { XCTAssertTrue($0 is Abort) }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), [])
    }

    func testThrowingBodyLeavesAnExistingTargetUnchanged() throws {
        let directory = try makeTemporaryDirectory(self)
        let path = directory.appendingPathComponent("checkpoint.h5").path
        try writeHDF5Atomically(to: path) { try $0.root.setAttribute("epoch", 1) }
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        XCTAssertThrowsError(
            try writeHDF5Atomically(to: path) { file in
                try file.root.setAttribute("epoch", 2)
                throw Abort()
            })
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["checkpoint.h5"])
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), before)
        try withOpenHDF5File(path) { XCTAssertEqual(try $0.root.intAttribute("epoch"), 1) }
    }

    /// A replaced file keeps its permissions: a checkpoint made private stays private.
    func testReplacingKeepsThePermissionsOfTheOldFile() throws {
        let directory = try makeTemporaryDirectory(self)
        let path = directory.appendingPathComponent("checkpoint.h5").path
        try writeHDF5Atomically(to: path) { try $0.root.setAttribute("epoch", 1) }
        XCTAssertEqual(chmod(path, 0o600), 0)
        try writeHDF5Atomically(to: path) { try $0.root.setAttribute("epoch", 2) }
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        XCTAssertEqual(mode, 0o600)
        try withOpenHDF5File(path) { XCTAssertEqual(try $0.root.intAttribute("epoch"), 2) }
    }

    /// `last.h5` is made by a hard link; when that fails the message names `last.h5` and the
    /// file it was to follow, never the temporary name, and nothing is left behind.
    func testAFailedLinkNamesTheTargetAndLeavesNoTemporary() throws {
        let directory = try makeTemporaryDirectory(self)
        let missing = directory.appendingPathComponent("epoch-0001.h5").path
        let last = directory.appendingPathComponent("last.h5").path
        XCTAssertThrowsError(try AtomicFile.link(missing, to: last)) { error in
            let message = "\(error)"
            XCTAssertTrue(message.hasPrefix("\(last): link to \(missing) failed: No such file"), message)
            XCTAssertFalse(message.contains(AtomicFile.temporaryMarker), message)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), [])
        try writeHDF5Atomically(to: missing) { try $0.root.setAttribute("epoch", 1) }
        try AtomicFile.link(missing, to: last)
        try withOpenHDF5File(last) { XCTAssertEqual(try $0.root.intAttribute("epoch"), 1) }
    }
}
