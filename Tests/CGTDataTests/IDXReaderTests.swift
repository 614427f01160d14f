import CGTData
import CGTTestSupport
import XCTest

/// IDX files, plain and gzip-compressed, and the Fashion-MNIST loader built on them.
final class IDXReaderTests: XCTestCase {
    let directory = TemporaryDirectory("idx")

    func source(_ name: String, _ bytes: [UInt8]) -> SourceFile { SourceFile(path: directory.file(name), bytes: bytes) }

    func testReadsEveryElementTypePlainAndCompressed() throws {
        let images = (0..<24).map { UInt8($0 * 10) }
        let shorts: [Int16] = [-300, -1, 0, 1, 2, 32_767]
        let floats: [Float] = [0.5, -1.25, 3e7, 0]
        let cases: [(UInt8, [Int], [UInt8], [Float])] = [
            (0x08, [2, 3, 4], images, images.map { Float($0) }),
            (0x09, [3], [0xFF, 0x7F, 0x80], [-1, 127, -128]),
            (0x0B, [2, 3], RawFiles.bytes(shorts, bigEndian: true), shorts.map { Float($0) }),
            (0x0C, [2], RawFiles.bytes([Int32(-70_000), 123_456], bigEndian: true), [-70_000, 123_456]),
            (0x0D, [4], RawFiles.bytes(floats, bigEndian: true), floats),
            (0x0E, [1, 2], RawFiles.bytes([2.5, -0.75], bigEndian: true), [2.5, -0.75]),
        ]
        for (type, shape, data, expected) in cases {
            let file = RawFiles.idx(typeCode: type, shape: shape, data: data)
            for bytes in [file, RawFiles.gzipStored(file), Deflate.compress(file, gzip: true)] {
                let array = try IDXReader.read(source("a.idx", bytes))
                XCTAssertEqual(array.shape, shape)
                XCTAssertEqual(array.floatValues(), expected, "type \(type)")
            }
        }
    }

    func testRefusesBadMagicAndMismatchedSizes() {
        let path = directory.file("bad")
        assertDatasetError(file: path, mentions: ["not an IDX file", "magic bytes 08 00 08 03"]) {
            try IDXReader.read(SourceFile(path: path, bytes: [8, 0, 8, 3, 0, 0, 0, 1]))
        }
        assertDatasetError(file: path, mentions: ["not an IDX file"]) {
            try IDXReader.read(SourceFile(path: path, bytes: RawFiles.idx(typeCode: 0x0A, shape: [1], data: [1])))
        }
        let short = RawFiles.idx(typeCode: 0x08, shape: [2, 3], data: [1, 2, 3, 4, 5])
        assertDatasetError(file: path, mentions: ["holds 5 bytes", "need 6"]) {
            try IDXReader.read(SourceFile(path: path, bytes: short))
        }
        assertDatasetError(file: path, mentions: ["decompressed data ends before"]) {
            try IDXReader.read(SourceFile(path: path, bytes: RawFiles.gzipStored(short)))
        }
        let long = RawFiles.idx(typeCode: 0x08, shape: [2], data: [1, 2, 3])
        assertDatasetError(file: path, mentions: ["holds more than the 2 bytes"]) {
            try IDXReader.read(SourceFile(path: path, bytes: RawFiles.gzipStored(long)))
        }
        assertDatasetError(file: path, mentions: ["truncated", "dimensions"]) {
            try IDXReader.read(SourceFile(path: path, bytes: [0, 0, 8, 3, 0, 0]))
        }
    }

    func testAHeaderClaimingMoreThanTheFileCanHoldIsRefusedBeforeAllocating() {
        let path = directory.file("huge.gz")
        let header = RawFiles.idx(typeCode: 0x0E, shape: [60_000, 60_000, 60_000], data: [])
        assertDatasetError(file: path, mentions: ["more than a", "gzip file can hold"]) {
            try IDXReader.read(SourceFile(path: path, bytes: RawFiles.gzipStored(header + [1, 2, 3])))
        }
        let overflow = RawFiles.idx(typeCode: 0x0E, shape: [0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF], data: [])
        assertDatasetError(file: path, mentions: ["more data than can exist"]) {
            try IDXReader.read(SourceFile(path: path, bytes: overflow))
        }
    }

    /// Writes Fashion-MNIST-style files of `count` images of 4x3 pixels with labels `i % 10`.
    func writeFashionFiles(trainCount: Int = 30, testCount: Int = 20, compress: Bool) throws {
        for (prefix, count) in [("train", trainCount), ("t10k", testCount)] {
            let pixels = (0..<(count * 12)).map { UInt8(truncatingIfNeeded: $0 * 7) }
            let images = RawFiles.idx(typeCode: 0x08, shape: [count, 4, 3], data: pixels)
            let labels = RawFiles.idx(typeCode: 0x08, shape: [count], data: (0..<count).map { UInt8($0 % 10) })
            let suffix = compress ? ".gz" : ""
            try RawFiles.write(
                compress ? RawFiles.gzipStored(images) : images,
                to: directory.file("\(prefix)-images-idx3-ubyte\(suffix)"))
            try RawFiles.write(
                compress ? Deflate.compress(labels, gzip: true) : labels,
                to: directory.file("\(prefix)-labels-idx1-ubyte\(suffix)"))
        }
    }

    func testFashionMNISTFromGeneratedFiles() throws {
        for compress in [true, false] {
            try writeFashionFiles(compress: compress)
            let prepared = try FashionMNIST.prepare(
                directory: directory.path, normalization: .fixed(FashionMNIST.paperNormalization),
                plan: SplitPlan(testFraction: .zero, validationFraction: SplitFraction("0.2")!, seed: 3),
                commandLine: "test", toolVersion: "0")
            XCTAssertEqual(prepared.featureShape, [1, 4, 3])
            XCTAssertEqual(prepared.splits.map(\.name), [.train, .validation, .test])
            XCTAssertEqual(prepared.splits.map(\.count), [24, 6, 20])
            let test = try XCTUnwrap(prepared.split(.test))
            XCTAssertEqual(test.labels, (0..<20).map { Int32($0 % 10) })
            let expected = (0..<12).map { Float((Double(UInt8(truncatingIfNeeded: $0 * 7)) / 255 - 0.286) / 0.353) }
            assertAllClose(Array(test.features[0..<12]), expected, relative: 1e-6)
            XCTAssertEqual(prepared.attributes["split_method"], .string("source"))
            guard case .strings(let files)? = prepared.attributes["source_files"] else {
                return XCTFail("source_files")
            }
            XCTAssertEqual(
                files.map { ($0 as NSString).lastPathComponent },
                [
                    "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                    "t10k-labels-idx1-ubyte",
                ].map { $0 + (compress ? ".gz" : "") })
            for name in directory.contents() { try FileManager.default.removeItem(atPath: directory.file(name)) }
        }
    }

    func testFashionMNISTLabelsThatDoNotMatchTheImages() throws {
        try writeFashionFiles(compress: false)
        let labels = directory.file("train-labels-idx1-ubyte")
        try RawFiles.write(
            RawFiles.idx(typeCode: 0x08, shape: [29], data: [UInt8](repeating: 1, count: 29)), to: labels)
        assertDatasetError(file: labels, mentions: ["holds 29 labels", "30 images"]) {
            try FashionMNIST.prepare(
                directory: directory.path, normalization: .fit(.none), plan: SplitPlan(testFraction: .zero),
                commandLine: "", toolVersion: "")
        }
        try RawFiles.write(
            RawFiles.idx(typeCode: 0x08, shape: [30], data: [UInt8](repeating: 10, count: 30)), to: labels)
        assertDatasetError(file: labels, mentions: ["label 10", "outside 0...9"]) {
            try FashionMNIST.prepare(
                directory: directory.path, normalization: .fit(.none), plan: SplitPlan(testFraction: .zero),
                commandLine: "", toolVersion: "")
        }
        let images = directory.file("train-images-idx3-ubyte")
        try RawFiles.write(
            RawFiles.idx(typeCode: 0x08, shape: [30, 12], data: [UInt8](repeating: 1, count: 360)), to: images)
        assertDatasetError(file: images, mentions: ["expected images: 3 dimensions", "0x00000803"]) {
            try FashionMNIST.prepare(
                directory: directory.path, normalization: .fit(.none), plan: SplitPlan(testFraction: .zero),
                commandLine: "", toolVersion: "")
        }
    }
}
