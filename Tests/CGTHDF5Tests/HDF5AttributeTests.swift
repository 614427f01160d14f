import CGTHDF5
import CHDF5
import XCTest

final class HDF5AttributeTests: XCTestCase {
    private var path = ""

    override func setUpWithError() throws {
        path = try makeTemporaryDirectory(self).appendingPathComponent("attributes.h5").path
    }

    func testEveryAttributeKindRoundTripsOnGroupsAndDatasets() throws {
        try withNewHDF5File(path) { file in
            let dataset = try file.root.createDataset("x", type: .float32, shape: [2])
            for holder in [file.root, dataset] as [HDF5AttributeHolder] {
                try holder.setAttribute("name", "Λ class é")
                try holder.setAttribute("names", ["cat", "Λ", "", "é"])
                try holder.setAttribute("count", 42)
                try holder.setAttribute("shape", [3, -1, Int.max])
                try holder.setAttribute("rate", 0.125)
                try holder.setAttribute("means", [0.5, -1e-9])
                try holder.setAttribute("none", [Double]())
                try holder.setAttribute("no_names", [String]())
            }
        }
        try withOpenHDF5File(path) { file in
            for holder in [file.root, try file.root.openDataset("x")] as [HDF5AttributeHolder] {
                XCTAssertEqual(
                    try holder.attributeNames(),
                    ["count", "means", "name", "names", "no_names", "none", "rate", "shape"])
                XCTAssertTrue(holder.hasAttribute("rate"))
                XCTAssertFalse(holder.hasAttribute("missing"))
                XCTAssertEqual(try holder.stringAttribute("name"), "Λ class é")
                XCTAssertEqual(try holder.stringArrayAttribute("names"), ["cat", "Λ", "", "é"])
                XCTAssertEqual(try holder.intAttribute("count"), 42)
                XCTAssertEqual(try holder.intArrayAttribute("shape"), [3, -1, Int.max])
                XCTAssertEqual(try holder.doubleAttribute("rate"), 0.125)
                XCTAssertEqual(try holder.doubleAttribute("count"), 42)
                XCTAssertEqual(try holder.doubleArrayAttribute("means"), [0.5, -1e-9])
                XCTAssertEqual(try holder.doubleArrayAttribute("none"), [])
                XCTAssertEqual(try holder.stringArrayAttribute("no_names"), [])
            }
        }
    }

    func testSettingAnExistingAttributeReplacesIt() throws {
        try withNewHDF5File(path) { file in
            try file.root.setAttribute("value", 1)
            try file.root.setAttribute("value", "now a string")
            try file.root.setAttribute("value", [1.0, 2.0])
        }
        try withOpenHDF5File(path, writable: true) { file in
            XCTAssertEqual(try file.root.doubleArrayAttribute("value"), [1, 2])
            try file.root.setAttribute("value", "final")
        }
        try withOpenHDF5File(path) { file in
            XCTAssertEqual(try file.root.attributeNames(), ["value"])
            XCTAssertEqual(try file.root.stringAttribute("value"), "final")
        }
    }

    func testMissingOrMistypedAttributeErrorsNameFileObjectAndAttribute() throws {
        try withNewHDF5File(path) { file in
            let group = try file.root.createGroup("train")
            try group.setAttribute("label", "x")
            try group.setAttribute("pair", [1, 2])
            XCTAssertThrowsError(try group.intAttribute("class_counts")) {
                let error = $0 as? HDF5Error
                XCTAssertEqual(error?.file, path)
                XCTAssertEqual(error?.object, "/train")
                XCTAssertTrue("\($0)".contains("class_counts"), "\($0)")
            }
            XCTAssertThrowsError(try group.intAttribute("label")) { XCTAssertTrue("\($0)".contains("label"), "\($0)") }
            XCTAssertThrowsError(try group.stringAttribute("pair"))
            XCTAssertThrowsError(try group.intAttribute("pair")) {
                XCTAssertTrue("\($0)".contains("2 values"), "\($0)")
            }
        }
    }

    /// Files from h5py and other tools use fixed-length strings and narrower numbers.
    func testReadsFixedLengthStringsAndOtherNumericTypes() throws {
        try withNewHDF5File(path) { _ in }
        try writeForeignAttributes(path)
        try withOpenHDF5File(path) { file in
            XCTAssertEqual(try file.root.stringAttribute("null_padded"), "abc")
            XCTAssertEqual(try file.root.stringArrayAttribute("space_padded"), ["ab", ""])
            XCTAssertEqual(try file.root.intAttribute("int16"), -7)
            XCTAssertEqual(try file.root.intArrayAttribute("uint8"), [1, 2, 250])
            XCTAssertEqual(try file.root.doubleArrayAttribute("uint8"), [1, 2, 250])
        }
    }

    private func writeForeignAttributes(_ path: String) throws {
        let file = H5Fopen(path, chdf5_f_acc_rdwr(), chdf5_p_default())
        XCTAssertGreaterThanOrEqual(file, 0)
        defer { H5Fclose(file) }
        let scalar = H5Screate(H5S_SCALAR)
        defer { H5Sclose(scalar) }
        var two: hsize_t = 2
        var three: hsize_t = 3
        let pair = H5Screate_simple(1, &two, nil)
        defer { H5Sclose(pair) }
        let triple = H5Screate_simple(1, &three, nil)
        defer { H5Sclose(triple) }

        func attribute(_ name: String, _ type: hid_t, _ space: hid_t, _ bytes: [UInt8]) {
            let attribute = H5Acreate2(file, name, type, space, chdf5_p_default(), chdf5_p_default())
            XCTAssertGreaterThanOrEqual(attribute, 0, name)
            XCTAssertGreaterThanOrEqual(H5Awrite(attribute, type, bytes), 0, name)
            H5Aclose(attribute)
        }
        let fixed = H5Tcopy(chdf5_c_s1())
        defer { H5Tclose(fixed) }
        H5Tset_size(fixed, 8)
        H5Tset_strpad(fixed, H5T_STR_NULLPAD)
        attribute("null_padded", fixed, scalar, Array("abc".utf8) + [UInt8](repeating: 0, count: 5))
        H5Tset_strpad(fixed, H5T_STR_SPACEPAD)
        attribute("space_padded", fixed, pair, Array("ab              ".utf8))
        attribute("int16", chdf5_native_int16(), scalar, withUnsafeBytes(of: Int16(-7)) { Array($0) })
        attribute("uint8", chdf5_native_uint8(), triple, [1, 2, 250])
    }
}
