import CGTData
import CGTTestSupport
import XCTest

/// `cgt prepare npy`'s logic: arrays from `.npy` files and `.npz` members, ignored labels, and a
/// test split of the source's own.
final class NumPyPreparationTests: XCTestCase {
    let directory = TemporaryDirectory("npy")

    func write(_ name: String, _ bytes: [UInt8]) throws -> String {
        let path = directory.file(name)
        try RawFiles.write(bytes, to: path)
        return path
    }

    func testOwnTestSplitFromAnArchiveAndIgnoredLabels() throws {
        let trainX = RawFiles.npy(descr: "<f8", shape: [6, 2], data: RawFiles.bytes((0..<12).map { Double($0) }))
        let trainY = RawFiles.npy(descr: "<i8", shape: [6], data: RawFiles.bytes([Int64(5), 2, -1, 5, 2, 2]))
        let archive = try write("train.npz", RawFiles.zip([("X.npy", trainX, nil), ("y.npy", trainY, nil)]))
        let testX = try write(
            "tx.npy", RawFiles.npy(descr: "<f4", shape: [2, 2], data: RawFiles.bytes([Float(1), 2, 3, 4])))
        let testY = try write("ty.npy", RawFiles.npy(descr: "|u1", shape: [2], data: [5, 2]))
        let prepared = try NumPyPreparation.prepare(
            x: "\(archive):X", y: "\(archive):y", testX: testX, testY: testY, ignoring: [-1], classNamesFile: nil,
            normalization: .fit(.minmax), plan: SplitPlan(testFraction: .zero), commandLine: "", toolVersion: "")
        XCTAssertEqual(prepared.classNames, ["class 2", "class 5"])
        let train = try XCTUnwrap(prepared.split(.train))
        let test = try XCTUnwrap(prepared.split(.test))
        XCTAssertEqual(train.labels, [1, 0, 1, 0, 0])
        XCTAssertEqual(prepared.sourceIndices[.train], [0, 1, 3, 4, 5], "row 2 had the ignored label")
        XCTAssertEqual(test.labels, [1, 0])
        // Feature 0 of the training rows is 0, 2, 6, 8, 10: min 0, max 10.
        XCTAssertEqual(
            Array(train.features.enumerated().filter { $0.offset % 2 == 0 }.map(\.element)), [0, 0.2, 0.6, 0.8, 1])
        XCTAssertEqual(test.features[0], 0.1)
        XCTAssertEqual(prepared.attributes["split_method"], .string("source"))
        guard case .strings(let files)? = prepared.attributes["source_files"] else { return XCTFail("source_files") }
        XCTAssertEqual(files, [archive, testX, testY], "the archive is listed once")
    }

    func testLabelsAndSamplesThatDoNotFit() throws {
        let x = try write(
            "x.npy", RawFiles.npy(descr: "<f4", shape: [4, 1], data: RawFiles.bytes([Float(1), 2, 3, 4])))
        let short = try write(
            "short.npy", RawFiles.npy(descr: "<i4", shape: [3], data: RawFiles.bytes([Int32(0), 1, 1])))
        let y = try write("y.npy", RawFiles.npy(descr: "<i4", shape: [4], data: RawFiles.bytes([Int32(0), 1, 1, 0])))
        let unseen = try write(
            "unseen.npy", RawFiles.npy(descr: "<i4", shape: [4], data: RawFiles.bytes([Int32(0), 1, 2, 0])))
        let names = directory.file("names.txt")
        try "a\nb\nc\n".write(toFile: names, atomically: true, encoding: .utf8)
        func prepare(_ y: String, testY: String? = nil, names: String? = nil) throws -> PreparedDataset {
            try NumPyPreparation.prepare(
                x: x, y: y, testX: testY.map { _ in x }, testY: testY, ignoring: [], classNamesFile: names,
                normalization: .fit(.none), plan: SplitPlan(testFraction: SplitFraction("0.5")!),
                commandLine: "", toolVersion: "")
        }
        assertDatasetError(file: short, mentions: ["holds 3 labels", "holds 4 samples"]) { try prepare(short) }
        assertDatasetError(file: unseen, mentions: ["label 2 of sample 2 does not occur in the training labels"]) {
            try prepare(y, testY: unseen)
        }
        assertDatasetError(file: names, mentions: ["names 3 classes but the labels hold 2"]) {
            try prepare(y, names: names)
        }
        XCTAssertEqual(try prepare(y).splits.map(\.count), [2, 2])
    }

    func testAValueNormalisationSendsBeyondFloat32IsRefused() throws {
        let x = try write(
            "x.npy", RawFiles.npy(descr: "<f8", shape: [4, 1], data: RawFiles.bytes([0, 1e-30, 0, 1e-30])))
        let y = try write("y.npy", RawFiles.npy(descr: "|u1", shape: [4], data: [0, 0, 1, 1]))
        let testX = try write("tx.npy", RawFiles.npy(descr: "<f8", shape: [1, 1], data: RawFiles.bytes([1e10])))
        let testY = try write("ty.npy", RawFiles.npy(descr: "|u1", shape: [1], data: [1]))
        assertDatasetError(file: testX, mentions: ["source index 0, feature 0", "not finite after normalisation"]) {
            try NumPyPreparation.prepare(
                x: x, y: y, testX: testX, testY: testY, ignoring: [], classNamesFile: nil,
                normalization: .fit(.minmax), plan: SplitPlan(testFraction: .zero), commandLine: "", toolVersion: "")
        }
    }
}
