import CGTData
import CGTHDF5
import CGTTestSupport
import XCTest

/// The reader accepts files in the documented layout and refuses every malformed one with one
/// line that names the file and the object at fault.
final class DatasetReaderTests: XCTestCase {
    let directory = TemporaryDirectory("dataset")

    func testReadsWhatTheWriterWrote() throws {
        let train = DatasetSplit(
            name: .train, features: [1, 2, 3, 4, 5, 6], labels: [0, 1, 1], sampleIDs: [0, 1, 2], featureShape: [2])
        let test = DatasetSplit(name: .test, features: [7, 8], labels: [1], sampleIDs: [0], featureShape: [2])
        let path = directory.file("ok.h5")
        try DatasetWriter.write(to: path, classNames: ["a", "β"], featureShape: [2], splits: [train, test])
        let reader = try DatasetReader(path: path)
        XCTAssertEqual(reader.classes, 2)
        XCTAssertEqual(reader.classNames, ["a", "β"])
        XCTAssertEqual(reader.featureShape, [2])
        XCTAssertEqual(reader.splitSizes, [.train: 3, .test: 1])
        let read = try reader.read(split: .train)
        XCTAssertEqual(read.features, [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(read.labels, [0, 1, 1])
        let shard = try reader.read(split: .train, rows: 1..<3)
        XCTAssertEqual(shard.features, [3, 4, 5, 6])
        XCTAssertEqual(shard.sampleIDs, [1, 2], "sample ids are rows of the whole split")
        XCTAssertEqual(directory.contents(), ["ok.h5"], "no temporary file is left")
    }

    /// Writes a file in the layout, then lets `spoil` break it.
    private func file(_ name: String, spoil: (HDF5Group) throws -> Void) throws -> String {
        let path = directory.file(name)
        try withNewHDF5File(path) { file in
            let root = file.root
            try root.setAttribute("layout_version", 1)
            try root.setAttribute("num_classes", 3)
            try root.setAttribute("class_names", ["a", "b", "c"])
            try root.setAttribute("feature_shape", [2])
            for split in ["train", "test"] {
                try root.writeDataset("\(split)/x", [Float](repeating: 0.5, count: 8), shape: [4, 2])
                try root.writeDataset("\(split)/y", [Int32](arrayLiteral: 0, 1, 2, 1), shape: [4])
            }
            try spoil(root)
        }
        return path
    }

    private func assertRefused(
        _ path: String, object: String, mentions words: [String], readSplit: Bool = false,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        do {
            let reader = try DatasetReader(path: path)
            if readSplit { _ = try reader.read(split: .train) }
            XCTFail("accepted \(path)", file: file, line: line)
        } catch let error as DatasetError {
            XCTAssertEqual(error.file, path, file: file, line: line)
            XCTAssertEqual(error.object, object, "\(error)", file: file, line: line)
            let text = error.description
            XCTAssertFalse(text.contains("\n"), "one line: \(text)", file: file, line: line)
            for word in words {
                XCTAssertTrue(text.contains(word), "'\(text)' should mention '\(word)'", file: file, line: line)
            }
        } catch {
            XCTFail("unexpected error type \(type(of: error)): \(error)", file: file, line: line)
        }
    }

    func testMissingFile() {
        assertRefused(directory.file("absent.h5"), object: "", mentions: ["cannot open"])
    }

    func testNotHDF5() throws {
        let path = directory.file("text.h5")
        try "not hdf5".write(toFile: path, atomically: true, encoding: .utf8)
        assertRefused(path, object: "", mentions: ["cannot open"])
    }

    func testMissingAttribute() throws {
        let path = directory.file("noattr.h5")
        try withNewHDF5File(path) { try $0.root.setAttribute("layout_version", 1) }
        assertRefused(path, object: "/", mentions: ["num_classes"])
    }

    func testMissingDataset() throws {
        let path = try file("missing.h5") { root in
            let group = try root.createGroup("validation")
            try group.writeDataset("x", [Float](repeating: 0, count: 4), shape: [2, 2])
        }
        assertRefused(path, object: "/validation/y", mentions: ["missing dataset"])
    }

    func testMissingSplit() throws {
        let path = directory.file("nosplit.h5")
        try withNewHDF5File(path) { file in
            try file.root.setAttribute("layout_version", 1)
            try file.root.setAttribute("num_classes", 2)
            try file.root.setAttribute("feature_shape", [2])
            try file.root.writeDataset("train/x", [Float](repeating: 0, count: 4), shape: [2, 2])
            try file.root.writeDataset("train/y", [Int32](arrayLiteral: 0, 1), shape: [2])
        }
        assertRefused(path, object: "/test", mentions: ["missing split"])
    }

    /// A file in the layout but for the element types of x and y.
    private func fileWithTypes<X: HDF5Scalar & Numeric, Y: HDF5Scalar & Numeric>(
        _ name: String, _ x: X.Type, _ y: Y.Type
    ) throws -> String {
        let path = directory.file(name)
        try withNewHDF5File(path) { file in
            let root = file.root
            try root.setAttribute("layout_version", 1)
            try root.setAttribute("num_classes", 2)
            try root.setAttribute("feature_shape", [2])
            for split in ["train", "test"] {
                try root.writeDataset("\(split)/x", [X](repeating: X.zero, count: 4), shape: [2, 2])
                try root.writeDataset("\(split)/y", [Y](repeating: Y.zero, count: 2), shape: [2])
            }
        }
        return path
    }

    func testWrongFeatureDtype() throws {
        assertRefused(
            try fileWithTypes("dtype.h5", Double.self, Int32.self), object: "/train/x",
            mentions: ["float64", "float32"])
    }

    func testWrongLabelDtype() throws {
        assertRefused(
            try fileWithTypes("ydtype.h5", Float.self, Int64.self), object: "/train/y", mentions: ["int64", "int32"])
    }

    func testMismatchedSampleCounts() throws {
        let path = try file("counts.h5") { root in
            let group = try root.createGroup("validation")
            try group.writeDataset("x", [Float](repeating: 0, count: 6), shape: [3, 2])
            try group.writeDataset("y", [Int32](arrayLiteral: 0, 1), shape: [2])
        }
        assertRefused(path, object: "/validation/x", mentions: ["3 samples", "2"])
    }

    func testWrongFeatureShape() throws {
        let path = try file("shape.h5") { root in try root.setAttribute("feature_shape", [3]) }
        assertRefused(path, object: "/train/x", mentions: ["feature_shape"])
    }

    func testLabelOutOfRange() throws {
        let path = try file("label.h5") { root in
            try [Int32](arrayLiteral: 0, 1, 3, 1).withUnsafeBufferPointer {
                try root.openDataset("train/y").write($0, rows: 0..<4)
            }
        }
        assertRefused(path, object: "/train/y", mentions: ["label 3", "row 2", "[0, 3)"], readSplit: true)
    }

    func testNegativeLabel() throws {
        let path = try file("negative.h5") { root in
            try [Int32](arrayLiteral: -1, 1, 2, 1).withUnsafeBufferPointer {
                try root.openDataset("train/y").write($0, rows: 0..<4)
            }
        }
        assertRefused(path, object: "/train/y", mentions: ["label -1", "row 0"], readSplit: true)
    }

    func testNaNFeature() throws {
        let path = try file("nan.h5") { root in
            var values = [Float](repeating: 0.5, count: 8)
            values[5] = .nan
            try values.withUnsafeBufferPointer { try root.openDataset("train/x").write($0) }
        }
        assertRefused(path, object: "/train/x", mentions: ["non-finite", "row 2", "feature 1"], readSplit: true)
    }

    func testInfiniteFeature() throws {
        let path = try file("inf.h5") { root in
            var values = [Float](repeating: 0.5, count: 8)
            values[0] = -.infinity
            try values.withUnsafeBufferPointer { try root.openDataset("train/x").write($0) }
        }
        assertRefused(path, object: "/train/x", mentions: ["non-finite", "row 0"], readSplit: true)
    }

    func testWrongLayoutVersion() throws {
        let path = try file("version.h5") { root in try root.setAttribute("layout_version", 7) }
        assertRefused(path, object: "/", mentions: ["layout_version is 7"])
    }

    func testClassNamesCount() throws {
        let path = try file("names.h5") { root in try root.setAttribute("class_names", ["only one"]) }
        assertRefused(path, object: "/", mentions: ["class_names"])
    }

    func testSyntheticDataIsSeeded() {
        let a = SyntheticDataset.make(features: 5, classes: 3, trainCount: 20, testCount: 10, seed: 4)
        let b = SyntheticDataset.make(features: 5, classes: 3, trainCount: 20, testCount: 10, seed: 4)
        let c = SyntheticDataset.make(features: 5, classes: 3, trainCount: 20, testCount: 10, seed: 5)
        XCTAssertEqual(a.train.features, b.train.features)
        XCTAssertEqual(a.test.labels, b.test.labels)
        XCTAssertNotEqual(a.train.features, c.train.features)
        XCTAssertTrue(a.train.labels.allSatisfy { $0 >= 0 && $0 < 3 })
    }
}
