import CGTTestSupport
import Foundation
import XCTest

/// `--resume` continues the run as it was started: its own job.yaml, changed only where the
/// command says so and only where a run may change; a finished run is left as it is.
final class ResumeTests: XCTestCase {
    let directory = TemporaryDirectory("resume")

    func train(_ job: String, _ data: String, _ run: String, _ extra: [String]) throws -> CommandResult {
        try CommandRunner.cgt(["train", job, "--data", data, "--out", run] + extra)
    }

    /// Every file of a run folder with its contents, to see that nothing changed.
    func contents(_ folder: String) throws -> [String: Data] {
        var files: [String: Data] = [:]
        let enumerator = FileManager.default.enumerator(atPath: folder)
        while let name = enumerator?.nextObject() as? String {
            var isFolder: ObjCBool = false
            let path = "\(folder)/\(name)"
            if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), !isFolder.boolValue {
                files[name] = try Data(contentsOf: URL(fileURLWithPath: path))
            }
        }
        return files
    }

    func testResumeKeepsTheRunsOwnSettingsAndChangesOnlyWhatItIsTold() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 6, classes: 3, train: 64, test: 16)
        let job = try directory.write(
            "model: {hidden: [8], exits: [1]}\ntraining: {epochs: 2, batch_size: 16}\n", to: "job.yaml")
        let run = directory.file("run")
        let started = try train(job, data, run, ["--quiet", "--set", "logging.tensorboard=true"])
        XCTAssertEqual(started.status, 0, started.stderr)

        let longer = try train(job, data, run, ["--resume", "--set", "training.epochs=3"])
        XCTAssertEqual(longer.status, 0, longer.stderr)
        XCTAssertTrue(longer.stdout.contains("resume: training.epochs: 2 -> 3"), longer.stdout)
        let resolved = try String(contentsOfFile: "\(run)/job.yaml", encoding: .utf8)
        XCTAssertTrue(resolved.contains("tensorboard: true"), "kept from the run's start: \(resolved)")
        XCTAssertTrue(resolved.contains("epochs: 3"), resolved)

        // Finished: nothing is trained, evaluated or written.
        let before = try contents(run)
        let again = try train(job, data, run, ["--resume"])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stdout.contains("has trained all 3 epochs"), again.stdout)
        XCTAssertTrue(again.stdout.contains("says training.epochs: 2; the run keeps its own 3"), again.stdout)
        XCTAssertEqual(try contents(run), before, "a finished run is left as it is")

        let fewer = try train(job, data, run, ["--resume", "--set", "training.epochs=2"])
        XCTAssertEqual(fewer.status, 1, fewer.stderr)
        XCTAssertTrue(fewer.stderr.contains("has trained 3 epochs, more than training.epochs 2"), fewer.stderr)
        let otherRate = try train(
            job, data, run, ["--resume", "--set", "optimizer.lr=0.5", "--set", "training.epochs=4"])
        XCTAssertEqual(otherRate.status, 1, otherRate.stderr)
        XCTAssertTrue(
            otherRate.stderr.contains("may change only training.epochs, runtime and logging"), otherRate.stderr)
        XCTAssertTrue(otherRate.stderr.contains("optimizer.lr"), otherRate.stderr)
        let otherJob = try directory.write(
            "model: {hidden: [12], exits: [1]}\ntraining: {epochs: 2, batch_size: 16}\n", to: "other.yaml")
        let other = try train(otherJob, data, run, ["--resume", "--set", "training.epochs=4"])
        XCTAssertEqual(other.status, 1, other.stderr)
        XCTAssertTrue(other.stderr.contains("describes another run"), other.stderr)
        XCTAssertTrue(other.stderr.contains("model.hidden"), other.stderr)
        for refused in [fewer, otherRate, other] {
            XCTAssertEqual(refused.stderr.split(separator: "\n").count, 1, refused.stderr)
        }
        XCTAssertEqual(try contents(run), before, "refused resumes change nothing")
    }
}
