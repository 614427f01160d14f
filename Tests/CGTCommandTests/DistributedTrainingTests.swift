import CGTData
import CGTHDF5
import CGTTestSupport
import Foundation
import XCTest

/// Data-parallel training under real mpirun with 2 and 3 ranks (oversubscribed): the same
/// result as one rank, exact resume, and clean stops when something goes wrong.
final class DistributedTrainingTests: XCTestCase {
    let directory = TemporaryDirectory("mpi")

    func writeJob(_ text: String, name: String = "job.yaml") throws -> String {
        try directory.write(text, to: name)
    }

    /// All parameters of a checkpoint, in key order.
    func parameters(_ run: String) throws -> [Float] {
        try modelValues("\(run)/checkpoints/last.h5")
    }

    /// Every float32 tensor under `/model` of a checkpoint file (parameters and BatchNorm
    /// statistics), in key order.
    func modelValues(_ checkpoint: String) throws -> [Float] {
        try withOpenHDF5File(checkpoint) { file in
            var values: [Float] = []
            func collect(_ group: HDF5Group) throws {
                for name in try group.memberNames() {
                    if group.isGroup(name) {
                        try collect(try group.openGroup(name))
                    } else {
                        let dataset = try group.openDataset(name)
                        if dataset.elementType == .float32 { values += try dataset.readAll(as: Float.self) }
                    }
                }
            }
            try collect(try file.root.openGroup("model"))
            return values
        }
    }

    func relativeDifference(_ a: [Float], _ b: [Float]) -> Double {
        precondition(a.count == b.count)
        let difference = zip(a, b).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
        let norm = a.reduce(0.0) { $0 + Double($1) * Double($1) }
        return (difference / norm).squareRoot()
    }

    func train(ranks: Int, job: String, data: String, out: String, extra: [String] = []) throws -> CommandResult {
        let arguments = ["train", job, "--data", data, "--out", directory.file(out), "--quiet"] + extra
        return ranks == 1 ? try CommandRunner.cgt(arguments) : try CommandRunner.mpirun(ranks: ranks, arguments)
    }

    /// With sync BatchNorm (or none) and `training.shuffle: global`, N ranks reach the parameters
    /// of 1 rank: the same global batches, the same dropout masks (keyed by sample id), gradients
    /// summed over ranks.
    func testTwoAndThreeRanksEqualOneRank() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 10, classes: 3, train: 150, test: 45, spread: 2)
        // With BatchNorm, the bias of each Linear before it has a gradient that is zero in exact
        // arithmetic and rounding noise in practice; Adam scales that noise to full-size steps,
        // so any change in summation order moves those biases by lr per step. SGD does not.
        // The first variant reduces gradients overlapped with the backward pass, the second blocking.
        let variants = [
            (
                "syncbn", "model: {hidden: [24, 24], exits: [1, 2], dropout: 0.2}", "sync_batchnorm: true, ",
                "{name: sgd, lr: 0.05, momentum: 0.9}", "true"
            ),
            (
                "nobn", "model: {hidden: [24, 24], exits: [1, 2], dropout: 0.2, batchnorm: false}", "",
                "{name: adam, lr: 0.003}", "false"
            ),
        ]
        for (label, model, sync, optimizer, overlap) in variants {
            let job = try writeJob(
                """
                \(model)
                training: {\(sync)shuffle: global, epochs: 3, batch_size: 30, checkpoint_every: 3, seed: 5}
                optimizer: \(optimizer)
                runtime: {bucket_kib: 1, overlap_allreduce: \(overlap)}
                """, name: "\(label).yaml")
            let one = try train(ranks: 1, job: job, data: data, out: "\(label)-1")
            XCTAssertEqual(one.status, 0, one.stderr)
            let reference = try parameters(directory.file("\(label)-1"))
            // Streamed a segment at a time (a buffer far smaller than the split), one rank
            // trains bitwise as it does holding the split, and three ranks as one.
            let streamed = ["--set", "training.shuffle_buffer=20"]
            for ranks in [1, 3] {
                let result = try train(ranks: ranks, job: job, data: data, out: "\(label)-s\(ranks)", extra: streamed)
                XCTAssertEqual(result.status, 0, result.stderr)
                let difference = relativeDifference(try parameters(directory.file("\(label)-s\(ranks)")), reference)
                print(
                    "equivalence: \(label), \(ranks) ranks streamed vs 1 held: relative parameter difference \(difference)"
                )
                if ranks == 1 {
                    XCTAssertEqual(
                        try parameters(directory.file("\(label)-s1")), reference, "\(label): streamed = held")
                } else {
                    XCTAssertLessThan(difference, 1e-5, "\(label), \(ranks) ranks streamed")
                }
            }
            for ranks in [2, 3] {
                let result = try train(ranks: ranks, job: job, data: data, out: "\(label)-\(ranks)")
                XCTAssertEqual(result.status, 0, result.stderr)
                let difference = relativeDifference(try parameters(directory.file("\(label)-\(ranks)")), reference)
                print("equivalence: \(label), \(ranks) ranks vs 1: relative parameter difference \(difference)")
                XCTAssertLessThan(difference, 1e-5, "\(label), \(ranks) ranks: relative difference \(difference)")
                let eval1 = try Data(contentsOf: URL(fileURLWithPath: directory.file("\(label)-1/eval.json")))
                let evalN = try Data(contentsOf: URL(fileURLWithPath: directory.file("\(label)-\(ranks)/eval.json")))
                let a = try JSONSerialization.jsonObject(with: eval1) as? [String: Any]
                let b = try JSONSerialization.jsonObject(with: evalN) as? [String: Any]
                XCTAssertEqual(
                    a?["exit_fractions"] as? [Double], b?["exit_fractions"] as? [Double],
                    "\(label), \(ranks) ranks: sharded evaluation")
            }
        }
    }

    /// Cascade Optimization (frozen stages) and ClassyNet (groups chosen from recall summed over
    /// ranks, restored and broadcast on resume) on 2 ranks reach the parameters of 1 rank
    /// (`training.shuffle: global`).
    func testStagedMethodsOnTwoRanksEqualOneRank() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 10, classes: 4, train: 160, test: 40, spread: 2)
        for (label, method) in [
            ("co", "{name: co}"),
            ("classy", "{name: classynet, weights: [1.0, 0.5, 0.25], grouping_epochs: 1, group_size: 1}"),
        ] {
            let job = try writeJob(
                """
                model: {hidden: [16, 16, 16], exits: [1, 2, 3], dropout: 0.2}
                method: \(method)
                training: {sync_batchnorm: true, shuffle: global, epochs: 3, batch_size: 32, checkpoint_every: 1, seed: 2}
                optimizer: {name: sgd, lr: 0.05, momentum: 0.9}
                """, name: "\(label).yaml")
            XCTAssertEqual(try train(ranks: 1, job: job, data: data, out: "\(label)-1").status, 0)
            let two = try train(ranks: 2, job: job, data: data, out: "\(label)-2")
            XCTAssertEqual(two.status, 0, two.stderr)
            let reference = try parameters(directory.file("\(label)-1"))
            let difference = relativeDifference(try parameters(directory.file("\(label)-2")), reference)
            XCTAssertLessThan(difference, 1e-5, "\(label): relative difference \(difference)")
            if label == "classy" {
                // Stop after the groups were chosen, resume on 2 ranks: rank 1 must receive them.
                XCTAssertEqual(
                    try train(
                        ranks: 2, job: job, data: data, out: "classy-resumed", extra: ["--set", "training.epochs=2"]
                    ).status, 0)
                // A resumed run continues its own job.yaml (2 epochs): training on takes --set.
                let resumed = try train(
                    ranks: 2, job: job, data: data, out: "classy-resumed",
                    extra: ["--resume", "--set", "training.epochs=3"])
                XCTAssertEqual(resumed.status, 0, resumed.stderr)
                let resumedParameters = try parameters(directory.file("classy-resumed"))
                let straight = try parameters(directory.file("classy-2"))
                XCTAssertTrue(
                    resumedParameters == straight,
                    "resumed on 2 ranks: relative difference \(relativeDifference(resumedParameters, straight))")
                let groups = try withOpenHDF5File(directory.file("classy-2/checkpoints/last.h5")) {
                    try $0.root.openDataset("exit_classes").readAll(as: Int32.self)
                }
                XCTAssertEqual(groups.count, 12)
                XCTAssertEqual(groups.suffix(4), [1, 1, 1, 1])
                XCTAssertEqual(groups.prefix(8).reduce(0, +), 2, "one class for each shallow exit")
            }
        }
    }

    /// `cgt eval` under mpirun shards the test split and the BatchNorm re-estimation and reports
    /// what one process reports; a sweep with a target writes its CSV and its choice.
    func testShardedEvaluationEqualsOneRank() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 10, classes: 3, train: 150, test: 61, spread: 2)
        let job = try writeJob(
            "model: {hidden: [16, 16], exits: [1, 2], dropout: 0.2}\ntraining: {epochs: 2, batch_size: 16, checkpoint_every: 2}\n",
            name: "eval.yaml")
        XCTAssertEqual(try train(ranks: 1, job: job, data: data, out: "evaluated").status, 0)
        let checkpoint = directory.file("evaluated/checkpoints/last.h5")
        let options = [
            "--checkpoint", checkpoint, "--data", data, "--criterion", "margin", "--sweep", "0.1:0.9:0.1",
            "--target-accuracy", "0.5", "--budget", "0.8",
        ]
        let one = try CommandRunner.cgt(["eval"] + options + ["--out", directory.file("eval-1")])
        XCTAssertEqual(one.status, 0, one.stderr)
        let two = try CommandRunner.mpirun(ranks: 2, ["eval"] + options + ["--out", directory.file("eval-2")])
        XCTAssertEqual(two.status, 0, two.stderr)
        func object(_ folder: String) throws -> [String: Any] {
            try XCTUnwrap(
                try JSONSerialization.jsonObject(
                    with: Data(contentsOf: URL(fileURLWithPath: directory.file("\(folder)/eval.json"))))
                    as? [String: Any])
        }
        let a = try object("eval-1")
        let b = try object("eval-2")
        for key in ["accuracy", "macro_f1", "weighted_f1", "relative_cost"] {
            XCTAssertEqual(try XCTUnwrap(a[key] as? Double), try XCTUnwrap(b[key] as? Double), accuracy: 1e-9, key)
        }
        XCTAssertEqual(a["confusion"] as? [[Int]], b["confusion"] as? [[Int]])
        XCTAssertEqual((a["confusion"] as? [[Int]])?.flatMap { $0 }.reduce(0, +), 61)
        // Summing BatchNorm statistics over ranks rounds differently: equal within float tolerance.
        for file in ["sweep.csv", "per_class_routing.csv", "reliability.csv"] {
            func cells(_ folder: String) throws -> [String] {
                try String(contentsOfFile: directory.file("\(folder)/\(file)"), encoding: .utf8).split(whereSeparator: {
                    $0 == "," || $0 == "\n"
                }).map(String.init)
            }
            let first = try cells("eval-1")
            let second = try cells("eval-2")
            XCTAssertEqual(first.count, second.count, file)
            for (x, y) in zip(first, second) {
                if let u = Double(x), let v = Double(y) {
                    XCTAssertEqual(u, v, accuracy: 1e-6, file)
                } else {
                    XCTAssertEqual(x, y, file)
                }
            }
        }
        XCTAssertEqual(
            try String(contentsOfFile: directory.file("eval-1/sweep.csv"), encoding: .utf8).split(separator: "\n")
                .count, 10)
        let chosen = try XCTUnwrap(a["chosen_thresholds"] as? [[String: Any]])
        XCTAssertEqual(chosen.map { $0["chosen_on"] as? String }, ["train", "train"], "never chosen on the test split")
        XCTAssertEqual((a["policy"] as? [String: Any])?["criterion"] as? String, "margin")
        XCTAssertEqual((a["confidence_quality"] as? [Any])?.count, 2)
    }

    /// Under a memory limit that makes `cgt eval` stream the test split in blocks of two
    /// batches, and on 2 ranks (each re-estimating BatchNorm from its part of a bounded subset
    /// of the training split), the report is the one of a process that holds the split; on one
    /// rank the re-estimated model is bitwise the one training's evaluation saved, and its
    /// numbers are training's.
    func testStreamedEvaluationAndReEstimationOnTwoRanksEqualOneRank() throws {
        // 200 features: 800 bytes a row, so CGT_MEMORY_LIMIT=256K makes blocks of 16 rows (of
        // 8, training's), and each rank's 30 or 31 test rows are streamed (training's 61); the
        // 300 training rows stream too (a quarter of the limit holds fewer than twice them), in
        // `global` mode, whose batches do not change when they stream.
        let data = try Fixtures.writeDataset(
            in: directory, features: 200, classes: 3, train: 300, test: 61, spread: 2)
        let job = try writeJob(
            """
            model: {hidden: [16, 16], exits: [1, 2], batchnorm: true, dropout: 0.2}
            training: {epochs: 2, batch_size: 16, shuffle: global}
            eval: {bn_recalibration_batches: 6, batch_size: 8}
            """, name: "streamed.yaml")
        XCTAssertEqual(try train(ranks: 1, job: job, data: data, out: "trained").status, 0)
        let limit = ["CGT_MEMORY_LIMIT": "256K"]
        // Training's own evaluation, its test share streamed under the limit, is the same too.
        let limited = try CommandRunner.cgt(
            ["train", job, "--data", data, "--out", directory.file("trained-limited"), "--quiet"], environment: limit)
        XCTAssertEqual(limited.status, 0, limited.stderr)
        // Everything but the checkpoint's path, which names the run folder.
        func report(_ run: String) throws -> String {
            try String(contentsOfFile: directory.file("\(run)/eval.json"), encoding: .utf8).split(separator: "\n")
                .filter { !$0.contains("\"checkpoint\"") }.joined(separator: "\n")
        }
        XCTAssertEqual(try report("trained-limited"), try report("trained"))
        XCTAssertEqual(try parameters(directory.file("trained-limited")), try parameters(directory.file("trained")))
        let checkpoint = directory.file("trained/checkpoints/last.h5")
        let options = [
            "eval", "--checkpoint", checkpoint, "--data", data, "--batch-size", "8", "--bn-recalibration", "--sweep",
            "0.3:0.9:0.2",
        ]
        let held = try CommandRunner.cgt(options + ["--out", directory.file("held")])
        XCTAssertEqual(held.status, 0, held.stderr)
        let one = try CommandRunner.cgt(options + ["--out", directory.file("one")], environment: limit)
        XCTAssertEqual(one.status, 0, one.stderr)
        let two = try CommandRunner.mpirun(
            ranks: 2, options + ["--out", directory.file("two")], environment: limit)
        XCTAssertEqual(two.status, 0, two.stderr)
        func text(_ file: String) throws -> String {
            try String(contentsOfFile: directory.file(file), encoding: .utf8)
        }
        func object(_ file: String) throws -> [String: Any] {
            try XCTUnwrap(
                try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory.file(file))))
                    as? [String: Any])
        }
        // Streamed in blocks or held whole: the same numbers, to the bit.
        XCTAssertEqual(try text("one/sweep.csv"), try text("held/sweep.csv"))
        XCTAssertEqual(try text("one/per_class_routing.csv"), try text("held/per_class_routing.csv"))
        let (a, b, heldReport) = (
            try object("one/eval.json"), try object("two/eval.json"), try object("held/eval.json")
        )
        for key in ["accuracy", "macro_f1", "relative_cost"] {
            XCTAssertEqual(a[key] as? Double, heldReport[key] as? Double, key)
            XCTAssertEqual(try XCTUnwrap(a[key] as? Double), try XCTUnwrap(b[key] as? Double), accuracy: 1e-9, key)
        }
        XCTAssertEqual(a["confusion"] as? [[Int]], b["confusion"] as? [[Int]])
        // The re-estimate on 2 ranks sums statistics in another order: equal within rounding.
        let oneModel = try modelValues(directory.file("one/model.h5"))
        let twoModel = try modelValues(directory.file("two/model.h5"))
        XCTAssertLessThan(relativeDifference(twoModel, oneModel), 1e-6)
        // One rank re-estimates what training's evaluation re-estimated and saved, bitwise, and
        // so reports training's numbers.
        XCTAssertEqual(oneModel, try parameters(directory.file("trained")))
        let trained = try object("trained/eval.json")
        for key in ["accuracy", "macro_f1", "relative_cost"] {
            XCTAssertEqual(a[key] as? Double, trained[key] as? Double, key)
        }
    }

    func testResumedTwoRankRunIsBitwiseTheSame() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 10, classes: 3, train: 120, test: 40, spread: 2)
        let job = try writeJob(
            "model: {hidden: [16, 16], exits: [1, 2]}\ntraining: {epochs: 4, batch_size: 16, checkpoint_every: 2}\n")
        XCTAssertEqual(try train(ranks: 2, job: job, data: data, out: "straight").status, 0)
        XCTAssertEqual(
            try train(ranks: 2, job: job, data: data, out: "stopped", extra: ["--set", "training.epochs=2"]).status, 0)
        let resumed = try train(
            ranks: 2, job: job, data: data, out: "stopped", extra: ["--resume", "--set", "training.epochs=4"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(try parameters(directory.file("straight")), try parameters(directory.file("stopped")))
    }

    /// A stop signal at a random step, on 1 and 2 ranks: status 75, a mid-epoch checkpoint, and
    /// the run resumed as Slurm requeues it (SLURM_RESTART_COUNT, no --resume) ends bitwise
    /// where an uninterrupted run ends, metrics included. On 2 ranks a second signal follows
    /// during the save and changes nothing.
    func testAStopSignalCheckpointsMidEpochAndTheRequeuedRunResumesBitwise() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 10, classes: 3, train: 2048, test: 64, spread: 2)
        let job = try writeJob(
            """
            model: {hidden: [32, 32], exits: [1, 2], batchnorm: true, dropout: 0.1}
            training: {epochs: 10, batch_size: 16, checkpoint_every: 20}
            """, name: "preempted.yaml")
        var generator = SystemRandomNumberGenerator()
        for ranks in [1, 2] {
            let straight = directory.file("straight-\(ranks)")
            XCTAssertEqual(try train(ranks: ranks, job: job, data: data, out: "straight-\(ranks)").status, 0)
            let run = directory.file("preempted-\(ranks)")
            let arguments = ["train", job, "--data", data, "--out", run, "--quiet"]
            let process: Process
            if ranks == 1 {
                process = Process()
                process.executableURL = URL(fileURLWithPath: CommandRunner.cgt)
                process.arguments = arguments
                process.standardOutput = FileHandle.nullDevice
                process.standardError = FileHandle.nullDevice
                try process.run()
            } else {
                process = try CommandRunner.startMPI(
                    ranks: ranks, arguments, stdout: directory.file("preempted-out.txt"),
                    stderr: directory.file("preempted-err.txt"))
            }
            defer { if process.isRunning { process.terminate() } }
            let deadline = Date().addingTimeInterval(60)
            // After the first epoch (its metrics line), at a random moment of the next ones.
            let metrics = "\(run)/metrics.jsonl"
            while ((try? String(contentsOfFile: metrics, encoding: .utf8)) ?? "").isEmpty && Date() < deadline {
                usleep(5_000)
            }
            let delay = UInt32.random(in: 0...400_000, using: &generator)
            usleep(delay)
            // mpirun forwards SIGUSR1 to its ranks; the second signal comes while rank 0 saves.
            kill(process.processIdentifier, SIGUSR1)
            if ranks == 2 {
                usleep(2_000)
                kill(process.processIdentifier, SIGUSR1)
            }
            process.waitUntilExit()
            XCTAssertEqual(process.terminationStatus, 75, "\(ranks) ranks, signal after \(delay / 1000) ms")
            // Mid-epoch nearly always; at an epoch's last step the epoch's own checkpoint is the
            // place to resume (no interrupted.h5), which the resume below checks as well.
            XCTAssertTrue(
                FileManager.default.fileExists(atPath: "\(run)/checkpoints/interrupted.h5")
                    || FileManager.default.fileExists(atPath: "\(run)/checkpoints/last.h5"),
                "stopped at a checkpoint after \(delay / 1000) ms")
            let requeued = ["--data", data, "--out", run, "--quiet"]
            let resumed =
                ranks == 1
                ? try CommandRunner.cgt(["train", job] + requeued, environment: ["SLURM_RESTART_COUNT": "1"])
                : try CommandRunner.mpirun(
                    ranks: ranks, ["train", job] + requeued, environment: ["SLURM_RESTART_COUNT": "1"])
            XCTAssertEqual(resumed.status, 0, resumed.stderr)
            XCTAssertEqual(
                try checkpointTensors("\(straight)/checkpoints/last.h5"),
                try checkpointTensors("\(run)/checkpoints/last.h5"),
                "\(ranks) ranks: resumed after a stop at \(delay / 1000) ms equals uninterrupted")
            XCTAssertFalse(FileManager.default.fileExists(atPath: "\(run)/checkpoints/interrupted.h5"))
            let lines = { (folder: String) in
                try String(contentsOfFile: "\(folder)/metrics.jsonl", encoding: .utf8).split(separator: "\n").map {
                    line -> [Double] in
                    let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                    return (object?["loss"] as? [Double] ?? []) + [object?["samples"] as? Double ?? -1]
                }
            }
            let (a, b) = (try lines(straight), try lines(run))
            XCTAssertEqual(a.count, b.count, "one metrics line per epoch")
            for (x, y) in zip(a, b) {
                for (u, v) in zip(x, y) { XCTAssertEqual(u, v, accuracy: 1e-9 * max(1, abs(u)), "metrics") }
            }
        }
    }

    func testMismatchedJobsAreRefused() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 10, classes: 3, train: 64, test: 32)
        let job = try writeJob("model: {hidden: [16, 16], exits: [1, 2]}\ntraining: {epochs: 1, batch_size: 16}\n")
        let cgt = CommandRunner.cgt
        let result = try CommandRunner.run(
            "/usr/bin/mpirun",
            [
                "--oversubscribe", "-np", "1", cgt, "train", job, "--data", data, "--out", directory.file("m"),
                ":", "-np", "1", cgt, "train", job, "--data", data, "--out", directory.file("m"), "--set",
                "optimizer.lr=0.5",
            ])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("rank 1 resolved a different job than rank 0"), result.stderr)
        XCTAssertEqual(result.stderr.components(separatedBy: "error:").count - 1, 1, "printed once: \(result.stderr)")
    }

    func testARankThatFailsStopsTheJob() throws {
        // The bad row lies in rank 1's contiguous shard (local shuffle mode): only rank 1 finds it.
        let clean = SyntheticDataset.make(features: 6, classes: 3, trainCount: 80, testCount: 20, seed: 1)
        var features = clean.train.features
        features[70 * 6 + 2] = .nan
        let poisoned = DatasetSplit(
            name: .train, features: features, labels: clean.train.labels, sampleIDs: clean.train.sampleIDs,
            featureShape: [6])
        let data = directory.file("bad.h5")
        try DatasetWriter.write(
            to: data, classNames: clean.classNames, featureShape: [6], splits: [poisoned, clean.test])
        let job = try writeJob(
            "model: {hidden: [8, 8], exits: [1, 2]}\ntraining: {epochs: 2, batch_size: 16, shuffle: local}\n")
        let started = Date()
        let result = try train(ranks: 2, job: job, data: data, out: "fail")
        XCTAssertLessThan(Date().timeIntervalSince(started), 30)
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("cgt (rank 1): error:"), result.stderr)
        XCTAssertTrue(result.stderr.contains("row 70, feature 2"), result.stderr)
        XCTAssertEqual(result.stderr.components(separatedBy: "error:").count - 1, 1, "printed once: \(result.stderr)")
    }

    func testNonFiniteGradientStopsWithTheStep() throws {
        let clean = SyntheticDataset.make(features: 6, classes: 3, trainCount: 64, testCount: 20, seed: 1)
        let huge = DatasetSplit(
            name: .train, features: clean.train.features.map { $0 >= 0 ? 3e38 : -3e38 }, labels: clean.train.labels,
            sampleIDs: clean.train.sampleIDs, featureShape: [6])
        let data = directory.file("huge.h5")
        try DatasetWriter.write(to: data, classNames: clean.classNames, featureShape: [6], splits: [huge, clean.test])
        let job = try writeJob("model: {hidden: [8, 8], exits: [1, 2]}\ntraining: {epochs: 1, batch_size: 16}\n")
        let result = try train(ranks: 2, job: job, data: data, out: "nan")
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("non-finite gradient at step 1 (epoch 1)"), result.stderr)
        XCTAssertEqual(result.stderr.components(separatedBy: "error:").count - 1, 1, "printed once: \(result.stderr)")
    }

    func testAKilledRankEndsTheJobAndLeavesTheLastCheckpointIntact() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 10, classes: 3, train: 2000, test: 40, spread: 2)
        let job = try writeJob(
            "model: {hidden: [64, 64], exits: [1, 2]}\ntraining: {epochs: 100000, batch_size: 8, checkpoint_every: 1}\n"
        )
        let run = directory.file("killed")
        let process = try CommandRunner.startMPI(
            ranks: 2, ["train", job, "--data", data, "--out", run, "--quiet"],
            stdout: directory.file("out.txt"), stderr: directory.file("err.txt"))
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let checkpoint = "\(run)/checkpoints/last.h5"
        let deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: checkpoint) && Date() < deadline { usleep(50_000) }
        XCTAssertTrue(FileManager.default.fileExists(atPath: checkpoint), "no checkpoint within 60 s")
        let ranks = CommandRunner.children(of: process.processIdentifier)
        XCTAssertEqual(ranks.count, 2, "mpirun's children: \(ranks)")
        guard let victim = ranks.last else { return }
        let killed = Date()
        kill(victim, SIGKILL)
        while process.isRunning && Date().timeIntervalSince(killed) < 30 { usleep(50_000) }
        XCTAssertFalse(process.isRunning, "the job still runs 30 s after a rank was killed")
        process.waitUntilExit()
        XCTAssertNotEqual(process.terminationStatus, 0)
        let result = try CommandRunner.cgt([
            "eval", "--checkpoint", checkpoint, "--data", data, "--out", directory.file("after"),
        ])
        XCTAssertEqual(result.status, 0, "the last checkpoint loads: \(result.stderr)")
    }

    func testARankThatStallsIsReported() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 10, classes: 3, train: 2000, test: 40, spread: 2)
        let job = try writeJob(
            """
            model: {hidden: [64, 64], exits: [1, 2]}
            training: {epochs: 100000, batch_size: 8, checkpoint_every: 1000}
            runtime: {stall_warning_seconds: 0.5}
            """)
        let run = directory.file("stall")
        let process = try CommandRunner.startMPI(
            ranks: 2, ["train", job, "--data", data, "--out", run, "--quiet"],
            stdout: directory.file("out.txt"), stderr: directory.file("err.txt"))
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let deadline = Date().addingTimeInterval(60)
        var ranks: [Int32] = []
        while ranks.count < 2 && Date() < deadline {
            usleep(100_000)
            ranks = CommandRunner.children(of: process.processIdentifier)
        }
        while !FileManager.default.fileExists(atPath: "\(run)/metrics.jsonl") && Date() < deadline { usleep(20_000) }
        guard let paused = ranks.last else { return XCTFail("no ranks found") }
        kill(paused, SIGSTOP)
        sleep(2)
        kill(paused, SIGCONT)
        // mpirun forwards the ranks' output; on a loaded machine that can take a while.
        var errors = ""
        let forwarded = Date().addingTimeInterval(15)
        while !errors.contains("another rank may have stopped") && Date() < forwarded {
            usleep(100_000)
            errors = (try? String(contentsOfFile: directory.file("err.txt"), encoding: .utf8)) ?? ""
        }
        XCTAssertTrue(process.isRunning, "the job goes on once the rank continues")
        process.terminate()
        process.waitUntilExit()
        XCTAssertTrue(errors.contains("warning: waited"), errors)
        XCTAssertTrue(errors.contains("at step"), errors)
    }

    func testSlurmWithoutPMIIsCaught() throws {
        let job = try writeJob("training: {epochs: 1}\n")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandRunner.cgt)
        process.arguments = ["train", job, "--out", directory.file("s")]
        var environment = ProcessInfo.processInfo.environment
        environment["SLURM_NTASKS"] = "4"
        process.environment = environment
        let err = Pipe()
        process.standardError = err
        process.standardOutput = Pipe()
        try process.run()
        process.waitUntilExit()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertNotEqual(process.terminationStatus, 0)
        XCTAssertTrue(text.contains("SLURM_NTASKS is 4 but MPI started a world of 1"), text)
    }
}
