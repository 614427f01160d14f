import CGTTestSupport
import Foundation
import XCTest

/// `cgt grid` under real mpirun: groups of ranks share the trials, failures stay in their
/// trial, a killed grid resumes without repeating finished trials.
final class GridCommandTests: XCTestCase {
    let directory = TemporaryDirectory("grid")

    /// A base job on a small synthetic dataset and a grid over it.
    private func writeGrid(epochs: Int, parameters: String, validation: Int = 0, train: Int = 128, batch: Int = 32)
        throws -> String
    {
        let data = try Fixtures.writeDataset(
            in: directory, features: 10, classes: 3, train: train, test: 48, validation: validation, spread: 2)
        try directory.write(
            """
            name: tiny
            data: {path: \(data)}
            model: {hidden: [16, 16], exits: [1, 2], dropout: 0.1}
            training: {epochs: \(epochs), batch_size: \(batch), checkpoint_every: 1}
            optimizer: {name: sgd, momentum: 0.9}
            """, to: "base.yaml")
        return try directory.write("base: base.yaml\nparameters:\n\(parameters)\n", to: "grid.yaml")
    }

    private func leaderboard(_ folder: String) throws -> [[String: Any]] {
        try XCTUnwrap(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(folder)/leaderboard.json")))
                as? [[String: Any]])
    }

    /// One process (no mpirun, one group): the queue is a local counter.
    func testAGridRunsWithoutMPIRun() throws {
        let grid = try writeGrid(epochs: 1, parameters: "  optimizer.lr: {values: [0.01, 0.03]}")
        let out = directory.file("grid-alone")
        let result = try CommandRunner.cgt(["grid", grid, "--out", out])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(try leaderboard(out).filter { $0["status"] as? String == "done" }.count, 2)
    }

    /// Successive halving in one group, where the order of trials is fixed: learning rates from
    /// useless to good, so each trial after the first meets better scores at every rung and
    /// stops there unless it beats their cutoff. Every trial either runs to the end or stops
    /// at a rung with a score below the cutoff recorded beside it; the leaderboard says where,
    /// the saving is printed, and `--resume` runs nothing again.
    func testSuccessiveHalvingStopsTrialsBelowTheRungsCutoff() throws {
        let grid = try writeGrid(
            epochs: 6, parameters: "  optimizer.lr: {values: [0.3, 0.1, 0.03, 0.0000001, 0.00001, 0.000001]}",
            validation: 40)
        var text = try String(contentsOfFile: grid, encoding: .utf8)
        text += "method: asha\nmetric: accuracy\nasha: {rungs: [2, 4], eta: 2}\n"
        try text.write(toFile: grid, atomically: true, encoding: .utf8)
        let listed = try CommandRunner.cgt(["grid", grid, "--list"])
        XCTAssertTrue(listed.stdout.contains("# successive halving: eta 2, rungs at [2, 4] of 6 epochs"), listed.stdout)
        let out = directory.file("asha")
        let result = try CommandRunner.cgt(["grid", grid, "--out", out])
        XCTAssertEqual(result.status, 0, result.stderr)
        let rows = try leaderboard(out)
        XCTAssertEqual(rows.count, 6)
        let stopped = rows.filter { $0["status"] as? String == "stopped" }
        XCTAssertFalse(stopped.isEmpty, "useless learning rates stop early: \(result.stdout)")
        XCTAssertGreaterThan(rows.filter { $0["status"] as? String == "done" }.count, 0)
        XCTAssertTrue(result.stdout.contains("trials stopped early"), result.stdout)
        var trained = 0
        for row in rows {
            let trial = row["trial"] as! String
            let status = try XCTUnwrap(
                JSONSerialization.jsonObject(
                    with: Data(contentsOf: URL(fileURLWithPath: "\(out)/\(trial)/status.json")))
                    as? [String: Any])
            let rungs = try XCTUnwrap(status["rungs"] as? [[String: Any]], "\(status)")
            let epochs = try XCTUnwrap(status["epochs"] as? Int)
            trained += epochs
            let metrics = try String(contentsOfFile: "\(out)/\(trial)/metrics.jsonl", encoding: .utf8)
            XCTAssertEqual(metrics.split(separator: "\n").count, epochs, "metrics.jsonl holds the epochs trained")
            if row["status"] as? String == "stopped" {
                let last = try XCTUnwrap(rungs.last)
                XCTAssertEqual(row["stopped_at_epoch"] as? Int, last["epoch"] as? Int)
                XCTAssertEqual(epochs, last["epoch"] as? Int)
                XCTAssertLessThan(last["value"] as! Double, last["cutoff"] as! Double, "\(status)")
                XCTAssertTrue(
                    FileManager.default.fileExists(atPath: "\(out)/\(trial)/checkpoints/epoch-000\(epochs).h5"))
            } else {
                XCTAssertEqual(row["status"] as? String, "done")
                XCTAssertEqual(epochs, 6)
                XCTAssertEqual(rungs.map { $0["epoch"] as? Int }, [2, 4])
                for rung in rungs where rung["cutoff"] != nil {
                    XCTAssertGreaterThanOrEqual(rung["value"] as! Double, rung["cutoff"] as! Double)
                }
            }
            XCTAssertEqual(rungs.first?["on_validation"] as? Bool, true)
        }
        XCTAssertLessThan(trained, 36)
        let first = try XCTUnwrap(
            JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: "\(out)/trial-000/status.json"))) as? [String: Any])
        XCTAssertEqual(first["status"] as? String, "done", "the first trial at each rung goes on")
        let markdown = try String(contentsOfFile: "\(out)/leaderboard.md", encoding: .utf8)
        XCTAssertTrue(markdown.contains("stopped after epoch 2"), markdown)
        let resumed = try CommandRunner.cgt(["grid", grid, "--out", out, "--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertFalse(resumed.stdout.contains("on group"), resumed.stdout)
    }

    /// `--set`, `--data` and `--seed` change every trial after the grid's parameters, as they
    /// change `cgt train`'s job; `--list` shows them; without `--out` the grid goes to
    /// runs/<grid name>; on one rank under mpirun the queue needs no window.
    func testCommandLineOverridesEveryTrial() throws {
        let grid = try writeGrid(epochs: 5, parameters: "  optimizer.lr: {values: [0.01, 0.03]}")
        let other = try Fixtures.writeDataset(
            in: directory, name: "other.h5", features: 10, classes: 3, train: 64, test: 16)
        let options = ["--set", "training.epochs=1", "--data", other, "--seed", "7"]
        let listed = try CommandRunner.cgt(["grid", grid, "--list"] + options)
        XCTAssertEqual(listed.status, 0, listed.stderr)
        XCTAssertTrue(
            listed.stdout.contains("# every trial also: --set training.epochs=1 --data \(other) --seed 7"),
            listed.stdout)
        let folder = directory.file("elsewhere")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let result = try CommandRunner.cgt(["grid", grid] + options, in: folder)
        XCTAssertEqual(result.status, 0, result.stderr)
        let trialJob = try String(contentsOfFile: "\(folder)/runs/grid/trial-001/job.yaml", encoding: .utf8)
        for line in ["epochs: 1", "seed: 7", "path: \(other)", "lr: 0.03"] {
            XCTAssertTrue(trialJob.contains(line), "\(line) in \(trialJob)")
        }
        let again = try CommandRunner.cgt(["grid", grid, "--set", "training.epochs=2", "--resume"], in: folder)
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.stderr.contains("the grid ran with --set training.epochs=1"), again.stderr)
        let bad = try CommandRunner.cgt(["grid", grid, "--list", "--set", "optimizer.lr=abc"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("--set: optimizer.lr: expected a number (from optimizer.lr=abc)"), bad.stderr)
        let one = try CommandRunner.mpirun(ranks: 1, ["grid", grid, "--out", directory.file("one-rank")] + options)
        XCTAssertEqual(one.status, 0, one.stderr)
        XCTAssertEqual(
            try leaderboard(directory.file("one-rank")).filter { $0["status"] as? String == "done" }.count, 2)
    }

    func testEveryTrialRunsOnceAndAFailureStaysInItsTrial() throws {
        let grid = try writeGrid(
            epochs: 2,
            parameters:
                "  optimizer.lr: {values: [0.01, 0.03, 0.1, 1.0e+30]}\n  method.name: {values: [softcgt, hardcgt]}")
        for (ranks, perTrial, schedule) in [(4, 2, "queue"), (2, 1, "static")] {
            let out = directory.file("grid-\(ranks)-\(schedule)")
            let result = try CommandRunner.mpirun(
                ranks: ranks, ["grid", grid, "--ranks-per-trial", "\(perTrial)", "--schedule", schedule, "--out", out])
            XCTAssertEqual(result.status, 0, result.stderr)
            let rows = try leaderboard(out)
            XCTAssertEqual(rows.count, 8, "one row per trial")
            for k in 0..<8 {
                let name = String(format: "trial-%03d", k)
                XCTAssertEqual(
                    result.stdout.components(separatedBy: "\(name) on group").count - 1, 1,
                    "\(name) runs once: \(result.stdout)")
            }
            let failed = rows.filter { $0["status"] as? String == "failed" }
            XCTAssertEqual(failed.count, 2, "lr 1e30 fails for both methods")
            for row in failed {
                XCTAssertTrue((row["message"] as? String ?? "").contains("non-finite gradient"), "\(row)")
            }
            XCTAssertEqual(rows.filter { $0["status"] as? String == "done" }.count, 6)
            XCTAssertEqual(
                rows.suffix(2).map { $0["status"] as? String }, ["failed", "failed"], "failed trials sort last")
            let f1 = rows.prefix(6).compactMap { $0["macro_f1"] as? Double }
            XCTAssertEqual(f1, f1.sorted(by: >), "sorted by the metric")
            for file in ["leaderboard.csv", "leaderboard.md", "pareto.svg", "pareto.csv", "report.html", "grid.json"] {
                XCTAssertTrue(FileManager.default.fileExists(atPath: "\(out)/\(file)"), file)
            }
            for row in rows where row["status"] as? String == "done" {
                XCTAssertTrue(
                    FileManager.default.fileExists(atPath: "\(out)/\(row["trial"] as! String)/report.html"),
                    "the grid page links every finished trial's page")
                XCTAssertTrue(
                    FileManager.default.fileExists(
                        atPath: "\(out)/\(row["trial"] as! String)/figures/exit_distribution.csv"))
            }
            let pareto = try String(contentsOfFile: "\(out)/pareto.csv", encoding: .utf8).split(separator: "\n")
            XCTAssertEqual(pareto.first, "trial,relative_cost,accuracy,pareto_optimal")
            XCTAssertEqual(pareto.count - 1, rows.filter { $0["status"] as? String == "done" }.count)
            XCTAssertTrue(result.stdout.contains("| 1 | trial-"), "the leaderboard is printed")
            XCTAssertTrue(
                result.stdout.contains("sorted by macro_f1 on the test split (the data has no validation split)"),
                result.stdout)
        }
        let again = try CommandRunner.mpirun(ranks: 2, ["grid", grid, "--out", directory.file("grid-4-queue")])
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.stderr.contains("--resume"), again.stderr)
        let summary = try CommandRunner.cgt([
            "grid", "--summary", directory.file("grid-4-queue"), "--metric", "relative_cost",
        ])
        XCTAssertEqual(summary.status, 0, summary.stderr)
        let costs = try leaderboard(directory.file("grid-4-queue")).prefix(6).compactMap {
            $0["relative_cost"] as? Double
        }
        XCTAssertEqual(costs, costs.sorted(), "re-sorted by relative cost, lower first")
    }

    /// With a validation split, every trial writes validation.json and the leaderboard ranks
    /// on it: swapping the files so validation order is the reverse of test order reverses
    /// the ranking.
    func testTrialsAreRankedOnTheValidationSplitWhenThereIsOne() throws {
        let grid = try writeGrid(
            epochs: 2, parameters: "  optimizer.lr: {values: [0.003, 0.01, 0.03, 0.1]}", validation: 37)
        let out = directory.file("validated")
        let result = try CommandRunner.mpirun(ranks: 2, ["grid", grid, "--ranks-per-trial", "2", "--out", out])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("sorted by macro_f1 on the validation split"), result.stdout)
        var rows = try leaderboard(out)
        XCTAssertEqual(rows.count, 4)
        for row in rows {
            let validation = try XCTUnwrap(row["validation"] as? [String: Double], "\(row)")
            let file =
                try JSONSerialization.jsonObject(
                    with: Data(contentsOf: URL(fileURLWithPath: "\(out)/\(row["trial"] as! String)/validation.json")))
                as? [String: Any]
            XCTAssertEqual(file?["samples"] as? Int, 37, "both ranks' shares of the validation split are counted once")
            XCTAssertEqual(validation["macro_f1"], file?["macro_f1"] as? Double)
        }
        let byValidation = rows.compactMap { ($0["validation"] as? [String: Double])?["macro_f1"] }
        XCTAssertEqual(byValidation, byValidation.sorted(by: >), "ranked on the validation metric")

        // Give each trial, in test order, the validation numbers of its mirror in test order.
        let byTest = rows.sorted {
            ($0["macro_f1"] as! Double, $1["trial"] as! String) > ($1["macro_f1"] as! Double, $0["trial"] as! String)
        }.map { $0["trial"] as! String }
        let evaluations = try byTest.map { try Data(contentsOf: URL(fileURLWithPath: "\(out)/\($0)/eval.json")) }
        for (k, trial) in byTest.enumerated() {
            try evaluations[byTest.count - 1 - k].write(to: URL(fileURLWithPath: "\(out)/\(trial)/validation.json"))
        }
        let summary = try CommandRunner.cgt(["grid", "--summary", out])
        XCTAssertEqual(summary.status, 0, summary.stderr)
        rows = try leaderboard(out)
        let swapped = rows.compactMap { ($0["validation"] as? [String: Double])?["macro_f1"] }
        XCTAssertEqual(swapped, swapped.sorted(by: >))
        let testValues = rows.map { $0["macro_f1"] as! Double }
        if Set(testValues).count == testValues.count {
            XCTAssertEqual(rows.map { $0["trial"] as! String }, byTest.reversed(), "validation order, not test order")
        }
        XCTAssertTrue(
            try String(contentsOfFile: "\(out)/leaderboard.csv", encoding: .utf8).contains("validation_macro_f1"))
    }

    func testResumeAfterAKilledGridSkipsFinishedTrials() throws {
        let grid = try writeGrid(
            epochs: 60, parameters: "  optimizer.lr: {values: [0.01, 0.02, 0.03, 0.04, 0.05, 0.06]}")
        let out = directory.file("killed")
        let mpirun = try CommandRunner.startMPI(
            ranks: 2, ["grid", grid, "--out", out], stdout: directory.file("killed.out"),
            stderr: directory.file("killed.err"))
        func finished() -> [String] {
            (0..<6).map { String(format: "trial-%03d", $0) }.filter { name in
                (try? String(contentsOfFile: "\(out)/\(name)/status.json", encoding: .utf8))?.contains("\"done\"")
                    ?? false
            }
        }
        let deadline = Date().addingTimeInterval(60)
        while finished().count < 2 && mpirun.isRunning && Date() < deadline { usleep(20_000) }
        let ranks = CommandRunner.children(of: mpirun.processIdentifier)
        for pid in ranks { kill(pid, SIGKILL) }
        kill(mpirun.processIdentifier, SIGKILL)
        mpirun.waitUntilExit()
        let before = finished()
        XCTAssertGreaterThanOrEqual(before.count, 2)
        XCTAssertLessThan(before.count, 6, "the grid was killed before the end (trials too fast?)")
        let stamps = try before.map {
            try FileManager.default.attributesOfItem(atPath: "\(out)/\($0)/status.json")[.modificationDate] as? Date
        }

        let resumed = try CommandRunner.mpirun(ranks: 2, ["grid", grid, "--out", out, "--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        for name in before {
            XCTAssertFalse(resumed.stdout.contains("\(name) on group"), "\(name) finished before: \(resumed.stdout)")
        }
        XCTAssertEqual(
            try before.map {
                try FileManager.default.attributesOfItem(atPath: "\(out)/\($0)/status.json")[.modificationDate] as? Date
            }, stamps)
        let rows = try leaderboard(out)
        XCTAssertEqual(rows.count, 6)
        XCTAssertEqual(rows.filter { $0["status"] as? String == "done" }.count, 6, "\(rows)")
    }

    /// The queue's counter lives on rank 0; a rank 0 deep in a long trial must still hand out
    /// trials, or the other group waits at every fetch until that trial ends. One trial of 30
    /// epochs and three of 1 (1,024 steps each) on two groups: the short ones all go to the group
    /// not running the long one. The stall shows only when rank 0's group draws the long trial;
    /// it is second in the queue because rank 0, which writes the grid's manifest first, usually
    /// fetches second. Three grids run.
    func testALongTrialDoesNotHoldBackTheOtherGroup() throws {
        let grid = try writeGrid(
            epochs: 1, parameters: "  training.epochs: {values: [1, 30, 1, 1]}", train: 2048, batch: 2)
        for attempt in 0..<3 {
            let out = directory.file("queue-\(attempt)")
            let result = try CommandRunner.mpirun(ranks: 2, ["grid", grid, "--ranks-per-trial", "1", "--out", out])
            XCTAssertEqual(result.status, 0, result.stderr)
            func group(_ trial: Int) throws -> Int {
                let data = try Data(
                    contentsOf: URL(fileURLWithPath: "\(out)/\(String(format: "trial-%03d", trial))/status.json"))
                return try XCTUnwrap((try JSONSerialization.jsonObject(with: data) as? [String: Any])?["group"] as? Int)
            }
            let long = try group(1)
            XCTAssertEqual(
                try [0, 2, 3].map(group), [Int](repeating: 1 - long, count: 3),
                "the group of the long trial (\(long)) took no other: \(result.stdout)")
        }
    }
}
