import CGTHDF5
import XCTest

final class HDF5GroupTests: XCTestCase {
    func testNestedGroupsMembershipAndKinds() throws {
        let path = try makeTemporaryDirectory(self).appendingPathComponent("groups.h5").path
        try withNewHDF5File(path) { file in
            let leaf = try file.root.createGroup("exits/0/linear")
            XCTAssertEqual(leaf.path, "/exits/0/linear")
            try leaf.writeDataset("weight", [Float](repeating: 1, count: 6), shape: [2, 3])
            _ = try file.root.createGroup("blocks")
        }
        try withOpenHDF5File(path) { file in
            let root = file.root
            XCTAssertEqual(try root.memberNames(), ["blocks", "exits"])
            XCTAssertEqual(try root.openGroup("exits/0").memberNames(), ["linear"])
            XCTAssertTrue(root.contains("exits/0/linear/weight"))
            XCTAssertTrue(root.contains("/exits/0"))
            XCTAssertFalse(root.contains("exits/1/linear"))
            XCTAssertFalse(root.contains("exits/0/linear/weight/deeper"))
            XCTAssertTrue(root.isGroup("exits/0/linear"))
            XCTAssertFalse(root.isGroup("exits/0/linear/weight"))
            XCTAssertFalse(root.isGroup("missing"))
            let exits = try root.openGroup("exits")
            XCTAssertEqual(try exits.openDataset("0/linear/weight").path, "/exits/0/linear/weight")
        }
    }
}
