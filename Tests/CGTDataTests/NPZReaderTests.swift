import CGTData
import CGTTestSupport
import XCTest

/// `.npz` archives: stored and deflated members, NumPy's own output, and damaged archives.
final class NPZReaderTests: XCTestCase {
    let directory = TemporaryDirectory("npz")
    let features: [Float] = [1, 2, 3, 4, 5, 6]

    var featureFile: [UInt8] { RawFiles.npy(descr: "<f4", shape: [3, 2], data: RawFiles.bytes(features)) }
    var labelFile: [UInt8] { RawFiles.npy(descr: "<i8", shape: [3], data: RawFiles.bytes([Int64(0), 1, 1])) }

    func archive(_ name: String, _ bytes: [UInt8]) -> SourceFile {
        SourceFile(path: directory.file(name), bytes: bytes)
    }

    func testStoredAndDeflatedMembers() throws {
        let bytes = RawFiles.zip([
            ("X.npy", featureFile, nil), ("y.npy", labelFile, Deflate.compress(labelFile, gzip: false)),
        ])
        let npz = try NPZArchive(archive("d.npz", bytes))
        XCTAssertEqual(npz.arrayNames, ["X", "y"])
        XCTAssertEqual(try npz.array(named: "X").floatValues(), features)
        XCTAssertEqual(try npz.array(named: "y.npy").integerValues(file: ""), [0, 1, 1])
    }

    func testArchivesWrittenByNumPy() throws {
        for data in [NumPyFixtures.storedArchive, NumPyFixtures.deflatedArchive] {
            let npz = try NPZArchive(archive("numpy.npz", [UInt8](data)))
            XCTAssertEqual(npz.arrayNames, ["X", "y"])
            let x = try npz.array(named: "X")
            XCTAssertEqual(x.shape, NumPyFixtures.archiveXShape)
            XCTAssertEqual(x.floatValues(), NumPyFixtures.archiveX.map { Float($0) })
            XCTAssertEqual(try npz.array(named: "y").integerValues(file: ""), NumPyFixtures.archiveY)
        }
    }

    func testNumPyInputSelectsAMember() throws {
        let path = directory.file("pair.npz")
        try RawFiles.write([UInt8](NumPyFixtures.deflatedArchive), to: path)
        let x = try NumPyInput.load("\(path):X")
        XCTAssertEqual(x.member, "X")
        XCTAssertEqual(x.location, "\(path):X")
        XCTAssertEqual(x.array.shape, [3, 2])
        assertDatasetError(file: path, mentions: ["holds 2 arrays", "X, y", "\(path):NAME"]) {
            try NumPyInput.load(path)
        }
        assertDatasetError(file: path, mentions: ["has no array 'Z'"]) { try NumPyInput.load("\(path):Z") }
        let single = directory.file("single.npz")
        try RawFiles.write(RawFiles.zip([("only.npy", featureFile, nil)]), to: single)
        XCTAssertEqual(try NumPyInput.load(single).member, "only")
    }

    func testDamagedArchives() throws {
        let good = RawFiles.zip([("X.npy", featureFile, Deflate.compress(featureFile, gzip: false))])
        let path = directory.file("bad.npz")
        assertDatasetError(file: path, mentions: ["no end-of-central-directory record"]) {
            try NPZArchive(archive("bad.npz", Array(good.dropLast(10))))
        }
        var corrupt = good
        corrupt[40] ^= 0x55
        assertDatasetError(file: path, mentions: ["X.npy"]) {
            try NPZArchive(archive("bad.npz", corrupt)).array(named: "X")
        }
        var wrongCRC = RawFiles.zip([("X.npy", featureFile, nil)])
        wrongCRC[80] ^= 0x01
        assertDatasetError(file: path, mentions: ["CRC-32 mismatch"]) {
            try NPZArchive(archive("bad.npz", wrongCRC)).array(named: "X")
        }
        assertDatasetError(file: path, mentions: ["not a zip (.npz) archive"]) {
            try NPZArchive(archive("bad.npz", [1, 2, 3]))
        }
    }
}
