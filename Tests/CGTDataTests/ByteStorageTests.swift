import CGTData
import CGTHDF5
import CGTTestSupport
import XCTest

/// uint8 feature storage (layout version 2): the reader's features equal, bit for bit, those of
/// a float32 file prepared the same way; old files still read; wrong ones are refused in one line.
final class ByteStorageTests: XCTestCase {
    let directory = TemporaryDirectory("bytes")

    /// `count` samples of shape [3, 4, 4] (3 channels) of pseudo-random bytes, 3 classes.
    private func byteSamples(_ count: Int) -> LabelledSamples {
        let width = 3 * 16
        let bytes = pseudoRandomBytes(count * width, seed: 7)
        return LabelledSamples(
            features: bytes.map { Float($0) }, featureShape: [3, 4, 4],
            labels: (0..<count).map { Int32($0 % 3) }, sourceIndex: (0..<Int64(count)).map { $0 })
    }

    private func prepare(_ samples: LabelledSamples, storage: FeatureStorage) throws -> PreparedDataset {
        try DatasetPreparation.prepare(
            samples: samples, classes: try ClassMapping.fromIntegers([0, 1, 2], names: ["a", "b", "c"]).mapping,
            plan: SplitPlan(testFraction: SplitFraction("0.25")!), normalization: .fit(.zscore),
            provenance: Provenance(kind: "npy", sources: [], commandLine: "test", toolVersion: "test"),
            featureSource: "x.npy", labelSource: "y.npy", storage: storage)
    }

    func testByteFileReadsBitwiseAsTheFloat32File() throws {
        let samples = byteSamples(400)
        let bytes = try prepare(samples, storage: .uint8)
        let floats = try prepare(samples, storage: .float32)
        let bytePath = directory.file("bytes.h5")
        let floatPath = directory.file("floats.h5")
        try DatasetWriter.write(bytes, to: bytePath)
        try DatasetWriter.write(floats, to: floatPath, compression: .none)

        try withOpenHDF5File(bytePath) { file in
            XCTAssertEqual(try file.root.intAttribute("layout_version"), 2)
            XCTAssertEqual(try file.root.openDataset("train/x").elementType, .uint8)
        }
        try withOpenHDF5File(floatPath) { file in
            XCTAssertEqual(try file.root.intAttribute("layout_version"), 1, "a float32 file stays version 1")
            XCTAssertEqual(try file.root.openDataset("train/x").filters, [], "--compression none")
        }
        let byteReader = try DatasetReader(path: bytePath)
        let floatReader = try DatasetReader(path: floatPath)
        XCTAssertEqual(byteReader.storage, [.train: .uint8, .test: .uint8])
        XCTAssertEqual(floatReader.storage, [.train: .float32, .test: .float32])

        // The expected values from the stored bytes, with mean and std per channel computed here.
        let train = try XCTUnwrap(bytes.split(.train))
        let n = Double(train.count * 16)
        var expected = train.features
        for c in 0..<3 {
            var values: [Double] = []
            for s in 0..<train.count {
                values += train.features[(s * 48 + c * 16)..<(s * 48 + c * 16 + 16)].map { Double($0) }
            }
            let mean = values.reduce(0, +) / n
            let std = (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / n).squareRoot()
            for s in 0..<train.count {
                for i in (s * 48 + c * 16)..<(s * 48 + c * 16 + 16) {
                    expected[i] = Float((Double(train.features[i]) - mean) / std)
                }
            }
        }
        let read = try byteReader.read(split: .train)
        XCTAssertEqual(read.features.map(\.bitPattern), try floatReader.read(split: .train).features.map(\.bitPattern))
        XCTAssertEqual(read.features.count, expected.count)
        for (a, b) in zip(read.features, expected) { XCTAssertEqual(a, b, accuracy: 1e-6) }

        let rows = [17, 3, 250, 3, 99]
        XCTAssertEqual(
            try byteReader.read(split: .train, rowIndices: rows).features.map(\.bitPattern),
            try floatReader.read(split: .train, rowIndices: rows).features.map(\.bitPattern))
        XCTAssertEqual(
            try byteReader.read(split: .test, rows: 10..<40).features.map(\.bitPattern),
            try floatReader.read(split: .test, rows: 10..<40).features.map(\.bitPattern))
        try byteReader.checkAllValues()
    }

    func testNonByteValuesAreRefusedForByteStorage() throws {
        var samples = byteSamples(40)
        samples.features[5 * 48 + 7] = 2.5
        assertDatasetError(file: "x.npy", mentions: ["source index 5", "feature 7", "2.5", "0...255", "float32"]) {
            try prepare(samples, storage: .uint8)
        }
        samples.features[5 * 48 + 7] = 256
        assertDatasetError(file: "x.npy", mentions: ["256.0", "0...255"]) { try prepare(samples, storage: .uint8) }
    }

    /// A file written by hand as cgt wrote them before version 2 (float32, version 1).
    func testVersionOneFloatFilesStillRead() throws {
        let path = directory.file("old.h5")
        try withNewHDF5File(path) { file in
            try file.root.setAttribute("layout_version", 1)
            try file.root.setAttribute("num_classes", 2)
            try file.root.setAttribute("feature_shape", [2])
            try file.root.writeDataset("train/x", [Float](arrayLiteral: 0.25, -1, 3, 4), shape: [2, 2])
            try file.root.writeDataset("train/y", [Int32](arrayLiteral: 0, 1), shape: [2])
            try file.root.writeDataset("test/x", [Float](arrayLiteral: 5, 6), shape: [1, 2])
            try file.root.writeDataset("test/y", [Int32](arrayLiteral: 1), shape: [1])
        }
        let reader = try DatasetReader(path: path)
        XCTAssertEqual(reader.storage[.train], .float32)
        XCTAssertNil(reader.byteNormalization)
        XCTAssertEqual(try reader.read(split: .train).features, [0.25, -1, 3, 4])
    }

    /// A file with uint8 features [2, 2, 2] of 2 channels; nil leaves an attribute out.
    private func byteFile(
        _ name: String, version: Int = 2, offset: DatasetAttributeValue? = .doubles([10, 20]),
        scale: DatasetAttributeValue? = .doubles([2, 4]), int16: Bool = false
    ) throws -> String {
        let path = directory.file(name)
        try withNewHDF5File(path) { file in
            let root = file.root
            try root.setAttribute("layout_version", version)
            try root.setAttribute("num_classes", 2)
            try root.setAttribute("feature_shape", [2, 2])
            for (key, value) in [("normalization_offset", offset), ("normalization_scale", scale)] {
                switch value {
                case .doubles(let numbers): try root.setAttribute(key, numbers)
                case .string(let text): try root.setAttribute(key, text)
                default: break
                }
            }
            for split in ["train", "test"] {
                if int16 {
                    try root.writeDataset("\(split)/x", [Int16](repeating: 1, count: 8), shape: [2, 2, 2])
                } else {
                    try root.writeDataset(
                        "\(split)/x", [UInt8](arrayLiteral: 10, 12, 20, 28, 0, 255, 20, 21), shape: [2, 2, 2])
                }
                try root.writeDataset("\(split)/y", [Int32](arrayLiteral: 0, 1), shape: [2])
            }
        }
        return path
    }

    func testByteFeaturesGetTheFileNormalisation() throws {
        let reader = try DatasetReader(path: try byteFile("ok.h5"))
        // Channel 0 (first two values of a sample): (x - 10) / 2; channel 1: (x - 20) / 4.
        XCTAssertEqual(try reader.read(split: .train).features, [0, 1, 0, 2, -5, 122.5, 0, 0.25])
    }

    func testWrongByteFilesAreRefused() throws {
        let cases: [(String, String, [String])] = [
            (try byteFile("future.h5", version: 3), "/", ["layout_version is 3", "1 to 2", "newer"]),
            (try byteFile("no_scale.h5", scale: nil), "/train/x", ["uint8", "normalization_scale"]),
            (try byteFile("no_offset.h5", offset: nil), "/train/x", ["uint8", "normalization_offset"]),
            (try byteFile("short_scale.h5", scale: .doubles([1])), "/train/x", ["1 values for 2 channels"]),
            (try byteFile("zero_scale.h5", scale: .doubles([1, 0])), "/train/x", ["positive"]),
            (try byteFile("nan_offset.h5", offset: .doubles([.nan, 0])), "/train/x", ["finite"]),
            (try byteFile("text_scale.h5", scale: .string("2")), "/train/x", ["not an array of numbers"]),
            (
                try byteFile("version_one.h5", version: 1), "/train/x",
                ["dtype is uint8", "layout_version 1", "version 2"]
            ),
            (try byteFile("int16.h5", int16: true), "/train/x", ["dtype is int16, expected float32 or uint8"]),
        ]
        for (path, object, words) in cases {
            assertDatasetError(file: path, mentions: words) { try DatasetReader(path: path) }
            do {
                _ = try DatasetReader(path: path)
            } catch let error as DatasetError {
                XCTAssertEqual(error.object, object, path)
            }
        }
    }

    /// Rows per chunk: about 256 KiB, but at least 64 chunks per split as long as a chunk keeps
    /// 64 KiB; the paper datasets' splits by hand.
    func testChunkRowsCutASplitIntoAtLeast64ChunksOfAtLeast64KiB() {
        // Indian Pines' 7,174 training pixels of 200 float32 bands: 7174 / 64 = 112.1, so 113 rows
        // (90,400 bytes) instead of 327 (256 KiB), and 64 chunks.
        XCTAssertEqual(DatasetWriter.chunkRows(sampleCount: 7174, featureCount: 200), 113)
        XCTAssertEqual(DatasetWriter.chunkRows(featureCount: 200), 327)
        // Its 3,075 test pixels: 49 rows would be 39,200 bytes, so 82 (65,600 bytes, 38 chunks).
        XCTAssertEqual(DatasetWriter.chunkRows(sampleCount: 3075, featureCount: 200), 82)
        // Fashion-MNIST, uint8: 256 KiB is 334 images, 180 chunks of the 60,000.
        XCTAssertEqual(DatasetWriter.chunkRows(sampleCount: 60000, featureCount: 784, elementSize: 1), 334)
        // A small split is one chunk: 150 rows of 40 bytes are 6,000 bytes.
        XCTAssertEqual(DatasetWriter.chunkRows(sampleCount: 150, featureCount: 10), 150)
        XCTAssertEqual(DatasetWriter.chunkRows(sampleCount: 0, featureCount: 10), 1)
        // Rows larger than 256 KiB: one per chunk.
        XCTAssertEqual(DatasetWriter.chunkRows(sampleCount: 10, featureCount: 1 << 20), 1)
    }

    func testCountersAreTheChunksRead() throws {
        // 4096 byte features, 200 samples: chunks of 16 rows (64 KiB, the fewest bytes a chunk
        // keeps; 200 / 64 would be 4 rows), so 13 chunks, the last partial.
        let width = 4096
        let samples = LabelledSamples(
            features: [Float](repeating: 7, count: 200 * width), featureShape: [width],
            labels: (0..<200).map { Int32($0 % 2) }, sourceIndex: (0..<200).map { Int64($0) })
        XCTAssertEqual(DatasetWriter.chunkRows(sampleCount: 200, featureCount: width, elementSize: 1), 16)
        for compression in DatasetCompression.allCases {
            let prepared = try DatasetPreparation.prepare(
                samples: samples, test: samples,
                classes: try ClassMapping.fromIntegers([0, 1], names: ["a", "b"]).mapping,
                plan: SplitPlan(testFraction: .zero), normalization: .fit(.none),
                provenance: Provenance(kind: "npy", sources: [], commandLine: "test", toolVersion: "test"),
                featureSource: "x.npy", labelSource: "y.npy", storage: .uint8)
            let path = directory.file("counted-\(compression).h5")
            try DatasetWriter.write(prepared, to: path, compression: compression)
            let reader = try DatasetReader(path: path)
            XCTAssertEqual(reader.counters, DataReadCounters())
            _ = try reader.read(split: .train, rows: 70..<130)
            // Chunks 4 to 8 of x (16 rows of 4096 bytes each) and the one chunk of 200 int32 labels.
            let expected = Int64(5 * 16 * width + 200 * 4)
            XCTAssertEqual(reader.counters.bytesDecompressed, expected, "\(compression)")
            switch compression {
            case .none: XCTAssertEqual(reader.counters.bytesRead, expected)
            case .gzip:
                XCTAssertGreaterThan(reader.counters.bytesRead, 0)
                XCTAssertLessThan(reader.counters.bytesRead, expected / 10, "constant bytes deflate to little")
            }
            XCTAssertGreaterThan(reader.counters.seconds, 0)
            let before = reader.counters
            _ = try reader.read(split: .train, rowIndices: [199, 130])
            // Chunks 8 and 12 (the last one partial, but decompressed whole) and every label.
            XCTAssertEqual(
                reader.counters.bytesDecompressed - before.bytesDecompressed, Int64(2 * 16 * width + 200 * 4))
        }
    }
}
