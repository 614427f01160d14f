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
            otherRate.stderr.contains("may change only training.epochs, training.shuffle_buffer, runtime and logging"),
            otherRate.stderr)
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

/// Every method's state is in its checkpoints: a 2-rank run of each, stopped by SIGTERM in
/// the middle of an epoch and resumed, ends bitwise where the uninterrupted run ends. For l2w
/// that takes the weight network, its Adam state, the step count and the meta batch of both
/// ranks (`/l2w`); the checkpoint's every float dataset is compared, those included.
final class MethodResumeTests: XCTestCase {
    let directory = TemporaryDirectory("method-resume")

    /// The method section of each method, on a 3-exit MLP.
    static let methods: [(name: String, section: String)] = [
        ("hardcgt", "{name: hardcgt, tau: 0.8}"),
        ("softcgt", "{name: softcgt, tau: 0.8, sharpness: 4}"),
        ("branchynet", "{name: branchynet, weights: [1.0, 0.6, 0.3]}"),
        ("co", "{name: co, stage_epochs: [1, 1, 2]}"),
        ("classynet", "{name: classynet, grouping_epochs: 1, weights: [1.0, 0.6, 0.3]}"),
        ("l2w", "{name: l2w, tau: 0.8, l2w: {hidden: 8, meta_interval: 2}}"),
    ]

    func testEveryMethodStoppedMidEpochResumesBitwise() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 8, classes: 4, train: 192, test: 32, spread: 1)
        for (name, section) in Self.methods {
            // 4 epochs of 6 steps; the signal comes at step 3 of epoch 3 (on rank 1, which
            // rank 0 learns of at the step's end).
            let job = try directory.write(
                """
                model: {hidden: [16, 16, 16], exits: [1, 2, 3], batchnorm: true, dropout: 0.1}
                method: \(section)
                training: {epochs: 4, batch_size: 32, sync_batchnorm: true, checkpoint_every: 1}
                """, to: "\(name).yaml")
            let straight = directory.file("\(name)-straight")
            let first = try CommandRunner.mpirun(
                ranks: 2, ["train", job, "--data", data, "--out", straight, "--quiet"])
            XCTAssertEqual(first.status, 0, "\(name): \(first.stderr)")
            let run = directory.file("\(name)-stopped")
            let arguments = ["train", job, "--data", data, "--out", run, "--quiet"]
            let stopped = try CommandRunner.mpirun(
                ranks: 2, arguments, environment: ["CGT_TEST_SIGNAL": "TERM:1:step:15"])
            XCTAssertEqual(stopped.status, 75, "\(name): \(stopped.stderr)")
            XCTAssertTrue(
                FileManager.default.fileExists(atPath: "\(run)/checkpoints/interrupted.h5"),
                "\(name): stopped mid-epoch: \(stopped.stderr)")
            let resumed = try CommandRunner.mpirun(ranks: 2, arguments + ["--resume"])
            XCTAssertEqual(resumed.status, 0, "\(name), resumed: \(resumed.stderr)")
            let expected = try checkpointTensors("\(straight)/checkpoints/last.h5")
            if name == "l2w" {
                XCTAssertNotNil(expected["/l2w/model/l2w/0/linear/weight"], "l2w's weight network is stored")
                XCTAssertNotNil(expected["/l2w/meta_batch/features"], "and its meta batch")
            }
            XCTAssertEqual(
                try checkpointTensors("\(run)/checkpoints/last.h5"), expected, "\(name): resumed equals straight")
            XCTAssertEqual(
                try String(contentsOfFile: "\(run)/metrics.jsonl", encoding: .utf8).split(separator: "\n").count, 4,
                "\(name): one metrics line per epoch")
        }
    }

    /// A streamed epoch (a shuffle buffer smaller than each rank's piece) stopped mid-epoch
    /// resumes bitwise too: the resumed epoch replays its buffer from the checkpoint's
    /// `epoch_buffer_rows`, in `blocks` and in `global` mode; the stopped run said that it streamed.
    func testAStreamedEpochStoppedMidEpochResumesBitwise() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 8, classes: 4, train: 192, test: 32, spread: 1)
        for mode in ["blocks", "global"] {
            let job = try directory.write(
                """
                model: {hidden: [16, 16], exits: [1, 2], batchnorm: true, dropout: 0.1}
                training: {epochs: 3, batch_size: 32, sync_batchnorm: true, shuffle: \(mode), shuffle_buffer: 20}
                """, to: "streamed-\(mode).yaml")
            let straight = directory.file("streamed-\(mode)-straight")
            let first = try CommandRunner.mpirun(ranks: 2, ["train", job, "--data", data, "--out", straight])
            XCTAssertEqual(first.status, 0, first.stderr)
            XCTAssertTrue(
                first.stdout.contains("through a shuffle buffer of 20")
                    || first.stdout.contains("in order, 10 at a time"), first.stdout)
            let run = directory.file("streamed-\(mode)-stopped")
            let arguments = ["train", job, "--data", data, "--out", run, "--quiet"]
            let stopped = try CommandRunner.mpirun(
                ranks: 2, arguments, environment: ["CGT_TEST_SIGNAL": "TERM:1:step:9"])
            XCTAssertEqual(stopped.status, 75, "\(mode): \(stopped.stderr)")
            let interrupted = try checkpointTensors("\(run)/checkpoints/interrupted.h5")
            XCTAssertFalse(interrupted.isEmpty)
            let resumed = try CommandRunner.mpirun(ranks: 2, arguments + ["--resume"])
            XCTAssertEqual(resumed.status, 0, "\(mode), resumed: \(resumed.stderr)")
            XCTAssertEqual(
                try checkpointTensors("\(run)/checkpoints/last.h5"),
                try checkpointTensors("\(straight)/checkpoints/last.h5"), "\(mode): resumed equals straight")
        }
    }
}
