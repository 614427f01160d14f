import CGTTestSupport
import Foundation
import XCTest

@testable import CGTData

/// `cgt prepare fashion-mnist` reading the images a block of rows at a time (a gzip file's
/// after unpacking it to a temporary file) writes the file that reading them whole writes.
final class FashionMNISTStreamingTests: XCTestCase {
    let directory = TemporaryDirectory("idx-stream")
    let createdAt = Date(timeIntervalSince1970: 1_800_000_000)

    /// Four IDX files of `train` and `test` images of 5 x 4 pixels in a folder of their own.
    func folder(_ tag: String, train: Int, test: Int, gzip: Bool) throws -> String {
        let folder = directory.file(tag)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        func write(_ stem: String, _ file: [UInt8]) throws {
            let path = "\(folder)/\(stem)" + (gzip ? ".gz" : "")
            try RawFiles.write(gzip ? Deflate.compress(file, gzip: true) : file, to: path)
        }
        for (images, labels, count, salt) in [
            (FashionMNIST.stems.trainImages, FashionMNIST.stems.trainLabels, train, 1),
            (FashionMNIST.stems.testImages, FashionMNIST.stems.testLabels, test, 9),
        ] {
            let pixels = (0..<(count * 20)).map { UInt8(truncatingIfNeeded: ($0 &* 2_654_435_761 &+ salt) >> 7) }
            try write(images, RawFiles.idx(typeCode: 0x08, shape: [count, 5, 4], data: pixels))
            let ids = (0..<count).map { UInt8(($0 &* 7 &+ salt) % 10) }
            try write(labels, RawFiles.idx(typeCode: 0x08, shape: [count], data: ids))
        }
        return folder
    }

    func testStreamedFilesEqualTheFilesPreparedInMemory() throws {
        let cases: [(String, Bool, FeatureStorage, NormalizationRequest, SplitFraction)] = [
            ("plain-uint8-paper", false, .uint8, .fixed(FashionMNIST.paperNormalization), .zero),
            ("gzip-uint8-paper", true, .uint8, .fixed(FashionMNIST.paperNormalization), SplitFraction(0.2)!),
            ("gzip-float32-zscore", true, .float32, .fit(.zscore), SplitFraction(0.1)!),
            ("plain-float32-minmax", false, .float32, .fit(.minmax), .zero),
        ]
        for (tag, gzip, storage, normalization, validation) in cases {
            let source = try folder(tag, train: 700, test: 230, gzip: gzip)
            let plan = SplitPlan(testFraction: .zero, validationFraction: validation, seed: 5)
            let memory = directory.file("\(tag)-memory.h5")
            let streamed = directory.file("\(tag)-streamed.h5")
            try DatasetWriter.write(
                FashionMNIST.prepare(
                    directory: source, normalization: normalization, plan: plan, commandLine: "cgt prepare",
                    toolVersion: "test", storage: storage, createdAt: createdAt), to: memory)
            // Blocks of three images and a ragged remainder.
            let blockBytes = 3 * 20 * 4 + 7
            let content = try FashionMNIST.content(
                directory: source, normalization: normalization, plan: plan, commandLine: "cgt prepare",
                toolVersion: "test", storage: storage, createdAt: createdAt, blockBytes: blockBytes)
            XCTAssertEqual(content.writeBlockBytes, blockBytes, "\(tag): the images were streamed, not read whole")
            try DatasetWriter.write(content, to: streamed)
            try assertSameDatasetFile(memory, streamed, tag)
        }
    }

    func testStreamingRefusesWhatReadingWholeRefuses() throws {
        let plan = SplitPlan(testFraction: .zero, seed: 5)
        func bothErrors(_ tag: String, gzip: Bool, damage: (_ folder: String) throws -> Void) throws -> [String] {
            let source = try folder(tag, train: 50, test: 20, gzip: gzip)
            try damage(source)
            return [false, true].map { streamed in
                do {
                    if streamed {
                        _ = try FashionMNIST.content(
                            directory: source, normalization: .fit(.none), plan: plan, commandLine: "",
                            toolVersion: "", storage: .uint8, createdAt: createdAt, blockBytes: 64)
                    } else {
                        _ = try FashionMNIST.prepare(
                            directory: source, normalization: .fit(.none), plan: plan, commandLine: "",
                            toolVersion: "", storage: .uint8, createdAt: createdAt)
                    }
                    XCTFail("\(tag): not refused")
                    return ""
                } catch {
                    return String(describing: error)
                }
            }
        }
        let images = FashionMNIST.stems.trainImages
        let labels = FashionMNIST.stems.testLabels
        for (tag, gzip, damage) in [
            ("short-plain", false, { (folder: String) in try self.truncate("\(folder)/\(images)", by: 3) }),
            ("short-gzip", true, { (folder: String) in try self.truncate("\(folder)/\(images).gz", by: 30) }),
            (
                "label-range", false,
                { (folder: String) in
                    try RawFiles.write(
                        RawFiles.idx(typeCode: 0x08, shape: [20], data: [UInt8](repeating: 11, count: 20)),
                        to: "\(folder)/\(labels)")
                }
            ),
        ] as [(String, Bool, (String) throws -> Void)] {
            let errors = try bothErrors(tag, gzip: gzip, damage: damage)
            XCTAssertEqual(errors[0], errors[1], tag)
        }
    }

    func truncate(_ path: String, by count: Int) throws {
        let handle = try XCTUnwrap(FileHandle(forUpdatingAtPath: path))
        let size = try handle.seekToEnd()
        try handle.truncate(atOffset: size - UInt64(count))
        try handle.close()
    }
}
