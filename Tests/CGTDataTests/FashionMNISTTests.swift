import CGTData
import CGTHDF5
import CGTTestSupport
import XCTest

/// The real Fashion-MNIST files, when Debian's dataset-fashion-mnist package has installed them.
final class FashionMNISTTests: XCTestCase {
    func testPreparesTheRealFiles() throws {
        let directory = FashionMNIST.defaultDirectory
        try XCTSkipUnless(
            FileManager.default.fileExists(atPath: "\(directory)/train-images-idx3-ubyte.gz"),
            "Fashion-MNIST is not installed (hdf5_data/fetch-fashion-mnist installs it)")
        let output = TemporaryDirectory("fashion")
        let path = output.file("fashion_mnist.h5")
        let prepared = try FashionMNIST.prepare(
            directory: directory, normalization: .fixed(FashionMNIST.paperNormalization),
            plan: SplitPlan(testFraction: .zero), commandLine: "test", toolVersion: "test", storage: .uint8)
        try DatasetWriter.write(prepared, to: path)

        let reader = try DatasetReader(path: path)
        XCTAssertEqual(reader.splitSizes, [.train: 60_000, .test: 10_000])
        XCTAssertEqual(reader.featureShape, [1, 28, 28])
        XCTAssertEqual(reader.classNames, FashionMNIST.classNames)
        try withOpenHDF5File(path) { file in
            XCTAssertEqual(try file.root.openDataset("train/x").shape, [60_000, 1, 28, 28])
            XCTAssertEqual(try file.root.openDataset("test/x").shape, [10_000, 1, 28, 28])
            XCTAssertEqual(
                try file.root.openGroup("train").intArrayAttribute("class_counts"), [Int](repeating: 6_000, count: 10))
            XCTAssertEqual(
                try file.root.openGroup("test").intArrayAttribute("class_counts"), [Int](repeating: 1_000, count: 10))
            XCTAssertEqual(try file.root.stringArrayAttribute("source_sha256").count, 4)
        }
        let train = try reader.read(split: .train, rows: 0..<1000)
        let mean = train.features.reduce(0.0) { $0 + Double($1) } / Double(train.features.count)
        XCTAssertEqual(mean, 0, accuracy: 0.05, "the paper's statistics centre the training images")
        // Stored as the source's bytes; read as the paper's formula applied to each.
        XCTAssertEqual(reader.storage[.train], .uint8)
        let pixels = try XCTUnwrap(prepared.split(.train)).features.prefix(1000 * 784)
        let expected = pixels.map { (Double($0) / 255 - 0.286) / 0.353 }
        XCTAssertEqual(train.features.count, expected.count)
        let worst = zip(train.features, expected).map { abs(Double($0) - $1) }.max() ?? .infinity
        XCTAssertLessThan(worst, 1e-5)
        let size = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        XCTAssertLessThanOrEqual(size, 55 << 20, "uint8 Fashion-MNIST fits in 55 MiB")
        try reader.close()
    }
}
