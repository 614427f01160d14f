import CGTHDF5
import XCTest

final class HDF5ErrorTests: XCTestCase {
    func testMissingFileErrorNamesThePath() throws {
        let path = try makeTemporaryDirectory(self).appendingPathComponent("absent.h5").path
        XCTAssertThrowsError(try HDF5File.open(path)) {
            guard let error = $0 as? HDF5Error else { return XCTFail("\($0)") }
            XCTAssertEqual(error.file, path)
            XCTAssertEqual(error.description, "\(path): open failed: No such file or directory")
        }
    }

    /// A folder or a pipe is refused before libhdf5 sees it (a pipe would block the open).
    func testAPathThatIsNotARegularFileIsRefused() throws {
        let directory = try makeTemporaryDirectory(self)
        let pipe = directory.appendingPathComponent("pipe.h5").path
        XCTAssertEqual(mkfifo(pipe, 0o600), 0)
        for path in [directory.path, pipe] {
            XCTAssertThrowsError(try HDF5File.open(path)) {
                XCTAssertEqual("\($0)", "\(path): open failed: not a regular file (a folder, a pipe or a device)")
            }
        }
    }

    func testNonHDF5FileIsAnHDF5Error() throws {
        let url = try makeTemporaryDirectory(self).appendingPathComponent("notes.h5")
        try "not an HDF5 file\n".write(to: url, atomically: false, encoding: .utf8)
        XCTAssertThrowsError(try HDF5File.open(url.path)) {
            guard let error = $0 as? HDF5Error else { return XCTFail("\($0)") }
            XCTAssertEqual(error.file, url.path)
            XCTAssertTrue(error.description.contains(url.path), error.description)
        }
    }

    func testMissingDatasetErrorNamesTheObjectPath() throws {
        let path = try makeTemporaryDirectory(self).appendingPathComponent("data.h5").path
        try withNewHDF5File(path) { file in
            _ = try file.root.createGroup("train")
            XCTAssertThrowsError(try file.root.openGroup("train").openDataset("x")) {
                guard let error = $0 as? HDF5Error else { return XCTFail("\($0)") }
                XCTAssertEqual(error.object, "/train/x")
                XCTAssertEqual(error.operation, "H5Dopen2")
                XCTAssertTrue(error.description.hasPrefix("\(path): /train/x: H5Dopen2 failed: "), error.description)
            }
        }
    }

    func testCloseIsIdempotent() throws {
        let path = try makeTemporaryDirectory(self).appendingPathComponent("close.h5").path
        let file = try HDF5File.create(path)
        try file.close()
        try file.close()
        XCTAssertFalse(file.isOpen)
    }
}
