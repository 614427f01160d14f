import CGTCheckpoint
import CGTData
import CGTJob
import CGTTestSupport
import CGTTraining
import XCTest

/// The convolutional model trained through the job and trainer, with augmentation.
final class CNNTrainingTests: XCTestCase {
    let directory = TemporaryDirectory("cnn")

    /// 8x8 images: class 0 bright in the top half, class 1 bright in the bottom half, noise elsewhere.
    func writeImages() throws -> String {
        func split(_ name: DatasetSplitName, _ count: Int, seed: UInt64) -> DatasetSplit {
            let noise = Fixtures.uniforms(count * 64, seed: seed, 0, 0.3)
            let labels = Fixtures.labels(count, classes: 2, seed: seed + 1)
            var x = noise
            for i in 0..<count {
                let rows = labels[i] == 0 ? 0..<4 : 4..<8
                for y in rows { for c in 0..<8 { x[i * 64 + y * 8 + c] += 1 } }
            }
            return DatasetSplit(
                name: name, features: x, labels: labels, sampleIDs: (0..<count).map { Int64($0) },
                featureShape: [1, 8, 8])
        }
        let path = directory.file("images.h5")
        try DatasetWriter.write(
            to: path, classNames: ["top", "bottom"], featureShape: [1, 8, 8],
            splits: [split(.train, 128, seed: 1), split(.test, 64, seed: 9)])
        return path
    }

    func testTinyCNNLearnsWithAugmentation() throws {
        let data = try writeImages()
        let job = try JobLoader.parse(
            """
            name: cnn
            model: {kind: cnn, channels: [4, 8], exits: [1, 2]}
            training: {epochs: 8, batch_size: 16, checkpoint_every: 8}
            optimizer: {lr: 0.01}
            augmentation: {crop_padding: 1, horizontal_flip: true}
            """, source: "cnn.yaml", overrides: ["data.path=\(data)"])
        let trainer = try Trainer(
            job: job, run: RunDirectory(path: directory.file("run")), communicator: nil, resume: false,
            progress: ProgressReporter(enabled: false))
        let statistics = try trainer.run()
        XCTAssertGreaterThan(statistics.accuracy, 0.95)
        let checkpoint = try Checkpoint.read(from: RunDirectory(path: directory.file("run")).lastCheckpoint)
        XCTAssertEqual(checkpoint.model["blocks.1.conv.weight"]?.shape, [8, 4, 3, 3], "PyTorch's [out, in, kh, kw]")
        XCTAssertEqual(checkpoint.model["exits.0.linear.weight"]?.shape, [2, 4])
    }

    func testModelAndDataMustFit() throws {
        let flat = try Fixtures.writeDataset(in: directory, features: 12, classes: 3)
        let job = try JobLoader.parse(
            "model: {kind: cnn, channels: [4], exits: [1]}", source: "j", overrides: ["data.path=\(flat)"])
        XCTAssertThrowsError(
            try Trainer(
                job: job, run: RunDirectory(path: directory.file("x")), communicator: nil, resume: false,
                progress: ProgressReporter(enabled: false))
        ) { error in
            XCTAssertTrue("\(error)".contains("cnn needs images"), "\(error)")
        }
        XCTAssertThrowsError(try JobLoader.parse("model: {kind: cnn, kernel_size: 4, exits: [1, 2, 3]}", source: "j")) {
            error in
            XCTAssertTrue("\(error)".contains("model.kernel_size"), "\(error)")
        }
        XCTAssertThrowsError(try JobLoader.parse("model: {kind: cnn, channels: [8, 8], exits: [1, 3]}", source: "j")) {
            error in
            XCTAssertTrue("\(error)".contains("the last exit must follow the last block (2)"), "\(error)")
        }
    }
}
