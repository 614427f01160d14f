import CGTCheckpoint
import CGTData
import CGTJob
import CGTTestSupport
import Foundation
import XCTest

@testable import CGTTraining

/// Training reads its data the same from a uint8 file as from a float32 one, and counts what
/// each epoch's reads cost in `metrics.jsonl`.
final class DataStorageTrainingTests: XCTestCase {
    let directory = TemporaryDirectory("storage")

    private func job(data: String) throws -> Job {
        try JobLoader.parse(
            "name: test", source: "test",
            overrides: [
                "data.path=\(data)", "model.hidden=[16, 16]", "model.exits=[1, 2]", "training.epochs=2",
                "training.batch_size=32", "training.seed=1", "optimizer.lr=0.01",
            ])
    }

    private func train(_ data: String, folder: String) throws -> [EpochMetrics] {
        let run = RunDirectory(path: directory.file(folder))
        _ = try Trainer(
            job: try job(data: data), run: run, communicator: nil, resume: false,
            progress: ProgressReporter(enabled: false)
        ).run()
        return try MetricsLog.read(run.metricsFile)
    }

    /// 240 training and 60 test samples of 10 byte features whose class shifts their mean.
    private func prepared(storage: FeatureStorage) throws -> PreparedDataset {
        var state: UInt32 = 5
        var features: [Float] = []
        var labels: [Int64] = []
        for i in 0..<300 {
            labels.append(Int64(i % 3))
            for _ in 0..<10 {
                state = state &* 1_664_525 &+ 1_013_904_223
                features.append(Float(min(255, Int(state >> 26) + 40 * (i % 3))))
            }
        }
        let (classes, ids) = try ClassMapping.fromIntegers(labels, names: nil)
        return try DatasetPreparation.prepare(
            samples: LabelledSamples(
                features: features, featureShape: [10], labels: ids, sourceIndex: (0..<300).map { Int64($0) }),
            classes: classes, plan: SplitPlan(testFraction: SplitFraction("0.2")!), normalization: .fit(.zscore),
            provenance: Provenance(kind: "npy", sources: [], commandLine: "test", toolVersion: "test"),
            featureSource: "x.npy", labelSource: "y.npy", storage: storage)
    }

    func testByteAndFloatFilesTrainTheSame() throws {
        let bytes = directory.file("bytes.h5")
        let floats = directory.file("floats.h5")
        try DatasetWriter.write(try prepared(storage: .uint8), to: bytes)
        try DatasetWriter.write(try prepared(storage: .float32), to: floats)
        let fromBytes = try train(bytes, folder: "bytes")
        let fromFloats = try train(floats, folder: "floats")
        XCTAssertEqual(fromBytes.map(\.loss), fromFloats.map(\.loss), "the same features, bit for bit")
        XCTAssertEqual(fromBytes.map(\.trainAccuracy), fromFloats.map(\.trainAccuracy))
        // Features of 10 bytes against 40 of float32: the byte file's epochs decompress less.
        XCTAssertLessThan(
            try XCTUnwrap(fromBytes[0].dataBytesDecompressed), try XCTUnwrap(fromFloats[0].dataBytesDecompressed))
    }

    func testEpochsCountTheirReads() throws {
        let data = SyntheticDataset.make(features: 12, classes: 3, trainCount: 240, testCount: 60, seed: 2)
        for compression in DatasetCompression.allCases {
            let path = directory.file("data-\(compression).h5")
            try DatasetWriter.write(
                to: path, classNames: data.classNames, featureShape: [12], splits: [data.train, data.test],
                compression: compression)
            let metrics = try train(path, folder: "run-\(compression)")
            XCTAssertEqual(metrics.count, 2)
            for epoch in metrics {
                // Every row is read each epoch: the one chunk of x (240 rows of 12 float32, under
                // 256 KiB); the one chunk of y (240 int32) in the first, the labels being kept.
                let decompressed = try XCTUnwrap(epoch.dataBytesDecompressed)
                let read = try XCTUnwrap(epoch.dataBytesRead)
                XCTAssertEqual(decompressed, 240 * 12 * 4 + (epoch.epoch == 1 ? 240 * 4 : 0), "\(compression)")
                switch compression {
                case .none: XCTAssertEqual(read, decompressed)
                case .gzip:
                    XCTAssertGreaterThan(read, 0)
                    XCTAssertLessThan(read, decompressed)
                }
                // The first epoch's rows are read before training starts; the second's while the first trained.
                let stall = try XCTUnwrap(epoch.dataStallSeconds)
                if epoch.epoch == 1 { XCTAssertGreaterThan(try XCTUnwrap(epoch.dataStartupSeconds), 0) }
                XCTAssertLessThan(stall, 10)
            }
            let line = try String(
                contentsOfFile: RunDirectory(path: directory.file("run-\(compression)")).metricsFile, encoding: .utf8)
            for key in [
                "\"data_bytes_read\"", "\"data_bytes_decompressed\"", "\"data_stall_seconds\"",
                "\"data_startup_seconds\"",
            ] {
                XCTAssertTrue(line.contains(key), key)
            }
        }
    }

    func testTheProgressLineNamesALongStall() {
        var lines: [String] = []
        var reporter = ProgressReporter(enabled: true) { lines.append($0) }
        var metrics = EpochMetrics(
            epoch: 1, globalStep: 10, learningRate: 0.1, loss: [1], weightedLoss: [1], gateMean: [1],
            trainAccuracy: [0.5], samples: 100, seconds: 10, samplesPerSecond: 10)
        metrics.dataStallSeconds = 0.1
        reporter.epoch(metrics, epochs: 2, secondsLeft: 10)
        metrics.dataStallSeconds = 0.5
        reporter.epoch(metrics, epochs: 2, secondsLeft: 10)
        XCTAssertFalse(lines[0].contains("data stall"), "1 % of the epoch is not worth a word: \(lines[0])")
        XCTAssertTrue(lines[1].contains("data stall 0.50s (5%)"), lines[1])
    }
}
