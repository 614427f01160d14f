import CGTHDF5
import CHDF5
import XCTest

/// Every object released and every temporary dataspace, datatype and property list closed
/// must give its HDF5 identifier back.
final class HandleLeakTests: XCTestCase {
    /// Identifiers still open in any file: files, groups, datasets, named types, attributes.
    private func openFileObjects() -> Int {
        Int(H5Fget_obj_count(hid_t(chdf5_f_obj_all()), chdf5_f_obj_all()))
    }

    /// A freshly created (and closed) identifier of each transient kind. libhdf5 numbers the
    /// identifiers of each kind consecutively, so any identifier between two probes that is
    /// still valid was opened in between and never closed.
    private func probeTransientIdentifiers() -> [hid_t] {
        let space = H5Screate(H5S_SCALAR)
        let type = H5Tcopy(chdf5_native_int8())
        let properties = H5Pcreate(chdf5_p_dataset_xfer())
        H5Sclose(space)
        H5Tclose(type)
        H5Pclose(properties)
        return [space, type, properties]
    }

    func testWorkingWithAFileReleasesEveryIdentifier() throws {
        let path = try makeTemporaryDirectory(self).appendingPathComponent("leaks.h5").path
        try withNewHDF5File(path) { _ in }
        // Once first: libhdf5 makes some property lists the first time an operation runs in
        // the process and keeps them; only what the second round leaves open is a leak.
        try workWithAFile(path)
        let before = probeTransientIdentifiers()
        try workWithAFile(path)
        let after = probeTransientIdentifiers()
        XCTAssertEqual(openFileObjects(), 0)
        for (first, last) in zip(before, after) {
            XCTAssertGreaterThan(last, first)
            let leaked = (first + 1..<last).filter { H5Iis_valid($0) > 0 }
            XCTAssertEqual(leaked, [], "identifiers \(first + 1)..<\(last) are not all closed")
        }
    }

    /// Writes, reads and inspects a small file, through every wrapper that opens identifiers.
    private func workWithAFile(_ path: String) throws {
        try writeHDF5Atomically(to: path) { file in
            try file.root.writeDataset(
                "g/x", (0..<12).map(Float.init), shape: [6, 2], chunkRows: 2, deflateLevel: 1, shuffle: true)
            try file.root.setAttribute("names", ["a", "b"])
            try file.root.setAttribute("title", "t")
            try file.root.setAttribute("title", 3)
            try file.root.setAttribute("empty", [Double]())
            XCTAssertThrowsError(try file.root.openDataset("missing"))
        }
        try withOpenHDF5File(path) { file in
            let dataset = try file.root.openDataset("g/x")
            var buffer = [Double](repeating: 0, count: 6)
            try buffer.withUnsafeMutableBufferPointer { try dataset.read(rowIndices: [4, 0, 4], into: $0) }
            try buffer.withUnsafeMutableBufferPointer { try dataset.read(rows: 1..<4, into: $0) }
            XCTAssertEqual(try file.root.stringArrayAttribute("names"), ["a", "b"])
            XCTAssertEqual(try file.root.intAttribute("title"), 3)
            XCTAssertThrowsError(try file.root.stringAttribute("title"))
            _ = try file.root.attributeNames()
            _ = try file.root.memberNames()
            _ = file.root.isGroup("g")
        }
    }
}
