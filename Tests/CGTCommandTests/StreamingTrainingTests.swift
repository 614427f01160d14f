import CGTTestSupport
import Foundation
import XCTest

/// Training a split larger than a rank may hold: the memory limit chooses to stream and says
/// so once; a buffer beyond the limit, or a `local` shard that does not fit, is refused in one
/// line; a bad chunk found mid-epoch ends every rank with one line.
final class StreamingTrainingTests: XCTestCase {
    let directory = TemporaryDirectory("streaming")

    /// 2000 samples of 50 features: a piece of about 456 KiB as a rank holds it.
    func data() throws -> String {
        try Fixtures.writeDataset(in: directory, features: 50, classes: 3, train: 2000, test: 60, spread: 2)
    }

    func job(_ training: String = "epochs: 2, batch_size: 50") throws -> String {
        try directory.write("model: {hidden: [16], exits: [1]}\ntraining: {\(training)}\n", to: "job.yaml")
    }

    func testTheMemoryLimitChoosesToStreamAndSaysSoOnce() throws {
        let data = try data()
        let job = try job()
        let held = try CommandRunner.cgt(["train", job, "--data", data, "--out", directory.file("held")])
        XCTAssertEqual(held.status, 0, held.stderr)
        XCTAssertEqual(
            held.stdout.components(separatedBy: "training data: each rank holds its piece of 2000").count, 2,
            held.stdout)
        // A quarter of 2M does not hold two pieces: the piece streams.
        let streamed = try CommandRunner.mpirun(
            ranks: 2, ["train", job, "--data", data, "--out", directory.file("streamed")],
            environment: ["CGT_MEMORY_LIMIT": "1M"])
        XCTAssertEqual(streamed.status, 0, streamed.stderr)
        let lines = streamed.stdout.split(separator: "\n").filter { $0.contains("training data:") }
        XCTAssertEqual(lines.count, 1, streamed.stdout)
        XCTAssertTrue(
            lines.first?.contains("streams its piece of 1000 samples through a shuffle buffer of") == true,
            streamed.stdout)
    }

    func testABufferBeyondTheLimitAndALocalShardThatDoesNotFitAreRefused() throws {
        let data = try data()
        for (training, limit, parts) in [
            (
                "epochs: 1, batch_size: 50, shuffle_buffer: 1G", "64M",
                ["training.shuffle_buffer", "1G", "more than the memory limit"]
            ),
            (
                "epochs: 1, batch_size: 50, shuffle: local, shuffle_buffer: 100", "64M",
                ["training.shuffle", "local holds", "blocks streams it"]
            ),
        ] {
            let job = try job(training)
            let out = directory.file("refused")
            let result = try CommandRunner.mpirun(
                ranks: 2, ["train", job, "--data", data, "--out", out], environment: ["CGT_MEMORY_LIMIT": limit])
            XCTAssertEqual(result.status, 1, result.stderr)
            let errors = result.stderr.split(separator: "\n").filter { $0.contains(": error: ") }
            XCTAssertEqual(errors.count, 1, result.stderr)
            for part in parts { XCTAssertTrue(result.stderr.contains(part), "\(part) in \(result.stderr)") }
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "a refused run leaves no folder")
        }
    }

    /// A chunk that no longer inflates, in the middle of the split, is found by the rank
    /// whose piece streams it, mid-epoch: one line, and both ranks end (no hang).
    func testACorruptChunkFoundMidEpochEndsEveryRank() throws {
        let data = try data()
        try damageChunk(of: data, at: try trainChunkLocation(of: data, index: "x.id.get_num_chunks() // 2"))
        let job = try job("epochs: 1, batch_size: 50, shuffle_buffer: 100")
        let result = try CommandRunner.mpirun(
            ranks: 2, ["train", job, "--data", data, "--out", directory.file("corrupt"), "--quiet"], timeout: 60)
        XCTAssertNotEqual(result.status, 0, result.stderr)
        let errors = result.stderr.split(separator: "\n").filter { $0.contains(": error: ") }
        XCTAssertEqual(errors.count, 1, result.stderr)
        XCTAssertTrue(errors.first?.contains("\(data): /train/x") == true, result.stderr)
        XCTAssertFalse(result.stderr.contains("HDF5-DIAG"), result.stderr)
    }
}
