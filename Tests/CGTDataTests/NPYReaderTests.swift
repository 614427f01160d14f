import CGTData
import CGTTestSupport
import XCTest

/// `.npy` files: every supported dtype and byte order, C and Fortran order, files NumPy wrote,
/// and headers that lie.
final class NPYReaderTests: XCTestCase {
    let path = "/data/X.npy"

    func read(_ bytes: [UInt8]) throws -> NumericArray { try NPYReader.read(bytes, file: path) }

    func testEveryDtypeAndByteOrder() throws {
        let cases: [(String, [UInt8], [Float])] = [
            ("|u1", [0, 200, 255], [0, 200, 255]),
            ("|i1", [0xFF, 0x80, 5], [-1, -128, 5]),
            ("|b1", [1, 0, 1], [1, 0, 1]),
            ("<u2", RawFiles.bytes([UInt16(65_535), 1, 300]), [65_535, 1, 300]),
            (">u2", RawFiles.bytes([UInt16(65_535), 1, 300], bigEndian: true), [65_535, 1, 300]),
            ("<i2", RawFiles.bytes([Int16(-2), 1, 300]), [-2, 1, 300]),
            (">i2", RawFiles.bytes([Int16(-2), 1, 300], bigEndian: true), [-2, 1, 300]),
            ("<i4", RawFiles.bytes([Int32(-100_000), 1, 7]), [-100_000, 1, 7]),
            ("<u4", RawFiles.bytes([UInt32(4_000_000_000), 1, 7]), [4_000_000_000, 1, 7]),
            ("<i8", RawFiles.bytes([Int64(-5), 1 << 40, 7]), [-5, 1_099_511_627_776, 7]),
            (">i8", RawFiles.bytes([Int64(-5), 1 << 40, 7], bigEndian: true), [-5, 1_099_511_627_776, 7]),
            ("<f4", RawFiles.bytes([Float(0.5), -2, 1e-3]), [0.5, -2, 1e-3]),
            (">f4", RawFiles.bytes([Float(0.5), -2, 1e-3], bigEndian: true), [0.5, -2, 1e-3]),
            ("<f8", RawFiles.bytes([0.1, -2.0, 1e300]), [0.1, -2, .infinity]),
            (">f8", RawFiles.bytes([0.1, -2.0, 3.0], bigEndian: true), [0.1, -2, 3]),
        ]
        for (descr, data, expected) in cases {
            for version: UInt8 in [1, 2, 3] {
                let array = try read(RawFiles.npy(descr: descr, shape: [3], data: data, version: version))
                XCTAssertEqual(array.shape, [3], descr)
                XCTAssertEqual(array.floatValues(), expected, "\(descr) version \(version)")
            }
        }
    }

    func testFortranOrderIsTransposedToCOrder() throws {
        // A [2, 3, 4] array whose element (i, j, k) is 100i + 10j + k, stored column-major.
        let shape = [2, 3, 4]
        var fortran: [Int32] = []
        for k in 0..<4 { for j in 0..<3 { for i in 0..<2 { fortran.append(Int32(100 * i + 10 * j + k)) } } }
        let array = try read(
            RawFiles.npy(descr: "<i4", shape: shape, fortranOrder: true, data: RawFiles.bytes(fortran)))
        var cOrder: [Float] = []
        for i in 0..<2 { for j in 0..<3 { for k in 0..<4 { cOrder.append(Float(100 * i + 10 * j + k)) } } }
        XCTAssertEqual(array.shape, shape)
        XCTAssertEqual(array.floatValues(), cOrder)
        let vector = try read(
            RawFiles.npy(descr: "<i4", shape: [3], fortranOrder: true, data: RawFiles.bytes([Int32(1), 2, 3])))
        XCTAssertEqual(vector.floatValues(), [1, 2, 3], "one axis: both orders are the same")
    }

    func testFilesWrittenByNumPy() throws {
        let files: [(Data, [Int], [Double])] = [
            (NumPyFixtures.fortranUInt16, NumPyFixtures.fortranUInt16Shape, NumPyFixtures.fortranUInt16Values),
            (NumPyFixtures.bigEndianFloat64, NumPyFixtures.bigEndianFloat64Shape, NumPyFixtures.bigEndianFloat64Values),
            (NumPyFixtures.int16, NumPyFixtures.int16Shape, NumPyFixtures.int16Values),
            (NumPyFixtures.fortranFloat32, NumPyFixtures.fortranFloat32Shape, NumPyFixtures.fortranFloat32Values),
        ]
        for (data, shape, values) in files {
            let array = try read([UInt8](data))
            XCTAssertEqual(array.shape, shape)
            XCTAssertEqual(array.floatValues(), values.map { Float($0) })
        }
        XCTAssertEqual(try read([UInt8](NumPyFixtures.int16)).integerValues(file: path), [-32768, -1, 0, 1, 32767])
    }

    func testIntegerLabels() throws {
        let labels = try read(RawFiles.npy(descr: "<f8", shape: [3], data: RawFiles.bytes([1.0, 2.0, 16.0])))
        XCTAssertEqual(try labels.integerValues(file: path), [1, 2, 16])
        let fractional = try read(RawFiles.npy(descr: "<f4", shape: [2], data: RawFiles.bytes([Float(1), 1.5])))
        assertDatasetError(file: path, mentions: ["element 1 is 1.5", "not an integer label"]) {
            try fractional.integerValues(file: path)
        }
        let nan = try read(RawFiles.npy(descr: "<f8", shape: [1], data: RawFiles.bytes([Double.nan])))
        assertDatasetError(file: path, mentions: ["nan", "not an integer label"]) { try nan.integerValues(file: path) }
        let huge = try read(RawFiles.npy(descr: "<u8", shape: [1], data: RawFiles.bytes([UInt64.max])))
        assertDatasetError(file: path, mentions: ["18446744073709551615"]) { try huge.integerValues(file: path) }
    }

    func testBadHeaders() {
        let data = RawFiles.bytes([Float(1), 2])
        let cases: [([UInt8], String)] = [
            (Array("not numpy at all".utf8), "not a .npy file"),
            ([0x93] + Array("NUMPY".utf8) + [9, 0, 10, 0], "version 9.0"),
            (RawFiles.npy(header: "{'descr': '<f4', 'shape': (2,), }", data: data), "'fortran_order' is missing"),
            (RawFiles.npy(header: "{'descr': '<f4', 'fortran_order': False, }", data: data), "'shape' is missing"),
            (
                RawFiles.npy(header: "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", data: data),
                "structured dtypes"
            ),
            (
                RawFiles.npy(header: "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", data: data),
                "dtype '|O' is not supported"
            ),
            (
                RawFiles.npy(header: "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", data: data),
                "dtype '<c8' is not supported"
            ),
            (
                RawFiles.npy(header: "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", data: data),
                "not a non-negative integer"
            ),
            (RawFiles.npy(header: "{'descr': '<f4' 'fortran_order': False}", data: data), "expected a dict literal"),
            (RawFiles.npy(header: String(repeating: "(", count: 10_000), data: data), "expected a dict literal"),
            ([0x93] + Array("NUMPY".utf8) + [1, 0, 0xFF, 0xFF] + Array("{}".utf8), "header claims 65535 bytes"),
        ]
        for (bytes, words) in cases {
            assertDatasetError(file: path, mentions: [words]) { try read(bytes) }
        }
    }

    func testDataThatDoesNotMatchTheShape() {
        let tooFew = RawFiles.npy(descr: "<f4", shape: [3, 2], data: RawFiles.bytes([Float](repeating: 1, count: 5)))
        assertDatasetError(file: path, mentions: ["needs 24 bytes of data but the file only has 20"]) {
            try read(tooFew)
        }
        let tooMany = RawFiles.npy(descr: "<f4", shape: [1], data: RawFiles.bytes([Float(1), 2]))
        assertDatasetError(file: path, mentions: ["needs 4 bytes", "has 8"]) { try read(tooMany) }
        let enormous = RawFiles.npy(descr: "<f8", shape: [1 << 30, 1 << 20], data: RawFiles.bytes([1.0]))
        assertDatasetError(file: path, mentions: ["needs 9007199254740992 bytes of data but the file only has 8"]) {
            try read(enormous)
        }
        let overflowing = RawFiles.npy(descr: "<f8", shape: [1 << 40, 1 << 40], data: [])
        assertDatasetError(file: path, mentions: ["more data than can exist"]) { try read(overflowing) }
    }
}
