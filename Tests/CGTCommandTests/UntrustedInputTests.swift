import CGTHDF5
import CGTTestSupport
import Foundation
import XCTest

/// Input made to break cgt: files that declare sizes they do not hold, counts that overflow,
/// YAML bombs, hostile names and links, a second writer, crash leftovers. Every case must end
/// in exit status 1 with one line naming the file and what is wrong, within a time limit,
/// under an address-space limit (so a runaway allocation fails the test instead of the
/// machine), and without files left where a refused run would have written.
final class UntrustedInputTests: XCTestCase {
    let directory = TemporaryDirectory("untrusted")
    /// The memory budget the children run with, and the address space they may map (MPI and
    /// oneDNN map far more than they touch).
    let environment = ["CGT_MEMORY_LIMIT": "1G"]
    let addressSpaceKiB = 4_000_000

    /// Runs cgt under `ulimit -v` and the memory budget.
    private func cgt(_ arguments: [String]) throws -> CommandResult {
        try CommandRunner.run(
            "/bin/sh", ["-c", "ulimit -v \(addressSpaceKiB); exec \"$0\" \"$@\"", CommandRunner.cgt] + arguments,
            timeout: 60, environment: environment)
    }

    /// Asserts a clean refusal: status 1 (not a signal), one line on stderr holding every part.
    private func assertRefused(
        _ result: CommandResult, _ parts: [String], _ label: String, file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertEqual(result.status, 1, "\(label): \(result.stderr)", file: file, line: line)
        let lines = result.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, "\(label): one line, got \(result.stderr)", file: file, line: line)
        for part in parts {
            XCTAssertTrue(
                result.stderr.contains(part), "\(label): '\(part)' missing in \(result.stderr)", file: file, line: line)
        }
    }

    private func noRunFolderContents(_ run: String, _ label: String, file: StaticString = #filePath, line: UInt = #line)
    {
        let left = (try? FileManager.default.contentsOfDirectory(atPath: run)) ?? []
        XCTAssertEqual(left, [], "\(label): a refused run leaves nothing, found \(left)", file: file, line: line)
    }

    private func job(
        _ text: String = "model: {hidden: [8], exits: [1]}\ntraining: {epochs: 1, batch_size: 4}\n",
        name: String = "job.yaml"
    ) throws -> String {
        try directory.write(text, to: name)
    }

    /// A real checkpoint to make lying copies of.
    private func trainedCheckpoint() throws -> String {
        let data = try Fixtures.writeDataset(in: directory, features: 4, classes: 3, train: 32, test: 8)
        let run = directory.file("good-run")
        let result = try CommandRunner.cgt(["train", try job(), "--data", data, "--out", run, "--quiet"])
        XCTAssertEqual(result.status, 0, result.stderr)
        return "\(run)/checkpoints/last.h5"
    }

    func testLyingDatasetsAndCheckpointsAreRefusedWithinBudget() throws {
        guard try CommandRunner.run("/usr/bin/python3", ["-c", "import h5py, numpy"]).status == 0 else {
            throw XCTSkip("/usr/bin/python3 with h5py and NumPy is missing (launch/setup installs python3-h5py)")
        }
        let corpus = directory.file("corpus")
        try FileManager.default.createDirectory(atPath: corpus, withIntermediateDirectories: true)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "Corpus/make_corpus.py"
        ).path
        let made = try CommandRunner.run("/usr/bin/python3", [script, corpus, try trainedCheckpoint()])
        XCTAssertEqual(made.status, 0, made.stderr)
        let datasets: [(String, [String], Bool)] = [
            // (file, what the line says, whether inspect refuses it too)
            ("huge_train", ["/train/y", "1099511627776 samples", "memory limit"], true),
            ("huge_test", ["/test/y", "1099511627776 samples", "memory limit"], true),
            ("huge_features", ["feature_shape", "4.0 TiB", "memory limit"], true),
            ("overflow_features", ["feature_shape", "overflow"], true),
            ("many_classes", ["num_classes is 1000000000"], true),
            ("max_classes", ["num_classes is 9223372036854775807"], true),
            ("label_out_of_range", ["/train/y", "label 7 at row 3"], true),
            ("nan_feature", ["/train/x", "non-finite value nan at row 5"], true),
            ("float64_features", ["/train/x", "float64"], true),
            ("lzf_features", ["/train/x", "lzf", "cannot decode"], true),
            ("corrupt_chunk", ["/train/x", "inflate"], true),
            ("no_test_split", ["/test", "missing split"], true),
            ("not_hdf5", ["not_hdf5.h5", "cannot open as HDF5"], true),
            ("truncated", ["truncated.h5", "truncated file"], true),
        ]
        for (name, parts, _) in datasets {
            let data = "\(corpus)/\(name).h5"
            let run = directory.file("run-\(name)")
            assertRefused(
                try cgt(["train", try job(), "--data", data, "--out", run]), [name + ".h5"] + parts, "train \(name)")
            noRunFolderContents(run, name)
            assertRefused(try cgt(["inspect", data]), [name + ".h5"] + parts, "inspect \(name)")
        }
        for (arguments, parts) in [
            (
                ["npy", "--x", "\(corpus)/overflow.npy", "--y", "\(corpus)/labels.npy"],
                ["overflow.npy", "more data than can exist"]
            ),
            (
                ["npy", "--x", "\(corpus)/huge.npy", "--y", "\(corpus)/labels.npy"],
                ["huge.npy", "but the file only has 64"]
            ),
            (
                ["fashion-mnist", "--dir", "\(corpus)/idx_bomb"],
                ["train-images-idx3-ubyte.gz", "dimensions [300, 1000, 1000]", "memory limit"]
            ),
        ] {
            let out = directory.file("prepared-\(arguments[2].split(separator: "/").last!).h5")
            assertRefused(try cgt(["prepare"] + arguments + ["--out", out]), parts, "prepare \(arguments[2])")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "no output from a refused prepare")
        }
        for (name, parts) in [
            ("checkpoint_huge_tensor", ["/model/huge", "is not a tensor of the job's network"]),
            ("checkpoint_wrong_shape", ["[1099511627776, 4]", "the job's network needs"]),
            ("checkpoint_bomb_job", ["job attribute", "expands to more than"]),
        ] {
            let checkpoint = "\(corpus)/\(name).h5"
            assertRefused(
                try cgt(["eval", "--checkpoint", checkpoint, "--out", directory.file("eval-\(name)")]),
                [name + ".h5"] + parts, "eval \(name)")
            assertRefused(try cgt(["inspect", checkpoint]), [name + ".h5"] + parts, "inspect \(name)")
            XCTAssertFalse(
                FileManager.default.fileExists(atPath: directory.file("eval-\(name)")), "\(name): no eval folder")
        }
    }

    func testHostileJobAndGridFilesAreRefused() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 4, classes: 3, train: 32, test: 8)
        var bomb = ["a: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]"]
        for i in 1..<10 {
            let previous = Character(UnicodeScalar(96 + i)!)
            let next = Character(UnicodeScalar(97 + i)!)
            bomb.append("\(next): &\(next) [" + Array(repeating: "*\(previous)", count: 9).joined(separator: ",") + "]")
        }
        let cases: [(String, String, [String])] = [
            ("bomb.yaml", bomb.joined(separator: "\n") + "\n", ["expands to more than 100000 values"]),
            ("duplicate.yaml", "name: a\ntraining: {epochs: 1}\nname: b\n", ["name: duplicate key (lines 1 and 3)"]),
            (
                "deep.yaml",
                "name: " + String(repeating: "[", count: 50_000) + String(repeating: "]", count: 50_000) + "\n",
                ["nests deeper than 64"]
            ),
            ("huge.yaml", String(repeating: "# padding\n", count: 120_000), ["more than the 1048576"]),
            (
                "hash-in-scalar.yaml",
                "model: [a#, " + String(repeating: "[", count: 50_000) + String(repeating: "]", count: 50_000) + "]\n",
                ["nests deeper than 64"]
            ),
            (
                "escaped-quote.yaml",
                "x: [\"\\\"\", " + String(repeating: "[", count: 50_000) + String(repeating: "]", count: 50_000)
                    + "]\n",
                ["nests deeper than 64"]
            ),
            ("escape.yaml", "name: ../../escaped_run\n", ["name: '../../escaped_run' is not a relative folder name"]),
            (
                "huge-model.yaml", "model: {hidden: [65536, 65536, 65536, 65536, 65536], exits: [5]}\n",
                ["model: the network", "more than the memory limit"]
            ),
            ("absolute.yaml", "name: /tmp/elsewhere\n", ["name:", "not a relative folder name"]),
        ]
        for (name, text, parts) in cases {
            let file = try directory.write(text, to: name)
            let run = directory.file("run-\(name)")
            assertRefused(try cgt(["train", file, "--data", data, "--out", run]), [name] + parts, name)
            noRunFolderContents(run, name)
            if name == "bomb.yaml" || name == "duplicate.yaml" || name == "deep.yaml" {
                let hostileGrid = try directory.write(text, to: "hostile-grid-\(name)")
                assertRefused(try cgt(["grid", hostileGrid, "--list"]), [parts[0]], "grid \(name)")
            }
        }
    }

    func testCommandLineSizesAreBounded() throws {
        let cases: [([String], [String])] = [
            (
                ["eval", "--checkpoint", "none.h5", "--batch-size", "1000000000000"],
                ["--batch-size must be in [1, 16777216]"]
            ),
            (
                ["eval", "--checkpoint", "none.h5", "--latency", "5", "--latency-batch", "1000000000000"],
                ["--latency-batch in [1, 16777216]"]
            ),
            (
                ["synth", "--out", directory.file("s.h5"), "--features", "1000000000000"],
                ["--features 1000000000000", "memory limit"]
            ),
            (["synth", "--out", directory.file("s.h5"), "--classes", "1000000000000"], ["--classes must be at most"]),
            (
                ["synth", "--out", directory.file("s.h5"), "--train", "9223372036854775806"],
                ["--train 9223372036854775806", "overflow"]
            ),
            (["train"], ["Missing expected argument"]),
        ]
        for (arguments, parts) in cases {
            assertRefused(try cgt(arguments), ["cgt: error:"] + parts, arguments.joined(separator: " "))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory.file("s.h5")))
        let dataFolder = directory.file("a-folder.h5")
        try FileManager.default.createDirectory(atPath: dataFolder, withIntermediateDirectories: true)
        assertRefused(
            try cgt(["train", try job(), "--data", dataFolder, "--out", directory.file("run-folder")]),
            ["a-folder.h5", "not a regular file"], "data.path is a folder")
    }

    /// The network at the evaluation's batch must fit the budget too, not only at the training batch.
    func testEvaluationBatchesAreBudgeted() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 4, classes: 3, train: 32, test: 1000)
        let wide = "model: {hidden: [65536], exits: [1]}\ntraining: {epochs: 1, batch_size: 4}\n"
        let run = directory.file("run-eval-batch")
        assertRefused(
            try cgt([
                "train", try job(wide + "eval: {batch_size: 1000}\n", name: "wide-eval.yaml"), "--data", data, "--out",
                run,
            ]),
            ["eval.batch_size", "batch of 1000", "memory limit"], "eval.batch_size")
        noRunFolderContents(run, "eval.batch_size")
        let trained = directory.file("run-wide")
        let result = try cgt([
            "train", try job(wide + "eval: {batch_size: 16}\n", name: "wide.yaml"), "--data", data, "--out", trained,
            "--quiet",
        ])
        XCTAssertEqual(result.status, 0, result.stderr)
        // The same checkpoint, as if trained with a global batch of 1000: re-estimating BatchNorm
        // would run the network on 1000 samples at once.
        let checkpoint = directory.file("wide-batch.h5")
        try FileManager.default.copyItem(atPath: "\(trained)/checkpoints/last.h5", toPath: checkpoint)
        try withOpenHDF5File(checkpoint, writable: true) { file in
            let job = try file.root.stringAttribute("job")
            XCTAssertTrue(job.contains("batch_size: 4"), job)
            try file.root.setAttribute("job", job.replacingOccurrences(of: "batch_size: 4", with: "batch_size: 1000"))
        }
        let out = directory.file("eval-wide")
        assertRefused(
            try cgt(["eval", "--checkpoint", checkpoint, "--data", data, "--batch-size", "16", "--out", out]),
            ["wide-batch.h5", "--bn-recalibration", "training.batch_size 1000", "memory limit"],
            "BatchNorm re-estimation")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }

    /// An output path that is a link is replaced by the new file; the link's target stays as it was.
    func testWritesDoNotFollowLinks() throws {
        let victim = try directory.write("precious\n", to: "victim.txt")
        let out = directory.file("linked.h5")
        try FileManager.default.createSymbolicLink(atPath: out, withDestinationPath: victim)
        let result = try cgt(["synth", "--out", out, "--train", "16", "--test", "8", "--features", "4"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(
            try String(contentsOfFile: victim, encoding: .utf8), "precious\n", "the link's target is untouched")
        let attributes = try FileManager.default.attributesOfItem(atPath: out)
        XCTAssertEqual(attributes[.type] as? FileAttributeType, .typeRegular, "the output is a file of its own now")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter {
            $0.contains(".tmp-")
        }
        XCTAssertEqual(leftovers, [])
    }

    /// A second trainer on a folder in use is refused; crash leftovers are cleaned, and a lost
    /// last.h5 does not stop --resume; a fresh run refuses a folder holding epoch files.
    func testRunFoldersAreLockedAndRecoverFromCrashLeftovers() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 4, classes: 3, train: 2048, test: 8)
        let long = try job(
            "model: {hidden: [64, 64], exits: [1, 2]}\ntraining: {epochs: 400, batch_size: 4, checkpoint_every: 1000}\n",
            name: "long.yaml")
        let run = directory.file("locked")
        let first = Process()
        first.executableURL = URL(fileURLWithPath: CommandRunner.cgt)
        first.arguments = ["train", long, "--data", data, "--out", run, "--quiet"]
        first.standardOutput = FileHandle.nullDevice
        first.standardError = FileHandle.nullDevice
        try first.run()
        defer { if first.isRunning { first.terminate() } }
        let deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: "\(run)/job.yaml") && Date() < deadline { usleep(50_000) }
        let second = try cgt(["train", long, "--data", data, "--out", run])
        assertRefused(second, [run, "in use by another cgt process"], "second trainer")
        first.terminate()
        first.waitUntilExit()

        let short = try job(
            "model: {hidden: [8], exits: [1]}\ntraining: {epochs: 2, batch_size: 64, checkpoint_every: 1}\n",
            name: "short.yaml")
        let crashed = directory.file("crashed")
        XCTAssertEqual(try cgt(["train", short, "--data", data, "--out", crashed, "--quiet"]).status, 0)
        // What a kill leaves: a partial temporary file, and no last.h5 after an epoch file's rename.
        let partial = "\(crashed)/checkpoints/epoch-0003.h5.tmp-4242-abc"
        try Data("partial".utf8).write(to: URL(fileURLWithPath: partial))
        try FileManager.default.removeItem(atPath: "\(crashed)/checkpoints/last.h5")
        assertRefused(
            try cgt(["train", short, "--data", data, "--out", crashed]), ["--resume"], "fresh run on epoch files")
        let resumed = try cgt([
            "train", short, "--data", data, "--out", crashed, "--resume", "--set", "training.epochs=3",
        ])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("epoch-0002.h5"), "resumed from the newest epoch file: \(resumed.stdout)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: partial), "leftovers are removed")
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(crashed)/checkpoints/epoch-0003.h5"))
    }
}

/// Training killed with SIGKILL at random moments, checkpoints written every epoch: every
/// checkpoint file left must open as a whole checkpoint, `last.h5` must be one of them, and
/// `--resume` must go on each time.
final class CrashSafetyTests: XCTestCase {
    let directory = TemporaryDirectory("crash")

    /// The checkpoint files in `folder` (not temporary ones), each checked to open with its model.
    private func checkCheckpoints(_ folder: String, kill: Int) throws -> [String] {
        guard FileManager.default.fileExists(atPath: folder) else { return [] }
        let names = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".h5") }
        for name in names {
            let path = "\(folder)/\(name)"
            XCTAssertNoThrow(
                try withOpenHDF5File(path) { file in
                    XCTAssertEqual(
                        try file.root.stringAttribute("kind"), "cgt-checkpoint", "\(name) after kill \(kill)")
                    XCTAssertTrue(
                        file.root.contains("model") && file.root.contains("optimizer"), "\(name) after kill \(kill)")
                }, "\(name) after kill \(kill) does not open")
        }
        if names.contains("last.h5") {
            let inode = { (path: String) in
                (try FileManager.default.attributesOfItem(atPath: path)[.systemFileNumber] as? UInt64)
            }
            let last = try inode("\(folder)/last.h5")
            let epochs = try names.filter { $0.hasPrefix("epoch-") }.map { try inode("\(folder)/\($0)") }
            XCTAssertTrue(epochs.contains(last), "last.h5 is one of the epoch files after kill \(kill)")
        }
        return names
    }

    func testKilledTrainingLeavesOnlyCompleteCheckpoints() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 8, classes: 3, train: 512, test: 32)
        let job = try directory.write(
            "model: {hidden: [256, 256], exits: [1, 2]}\ntraining: {epochs: 100000, batch_size: 128, checkpoint_every: 1}\n",
            to: "job.yaml")
        let run = directory.file("run")
        let checkpoints = "\(run)/checkpoints"
        var generator = SystemRandomNumberGenerator()
        var killsWithCheckpoints = 0
        var killsDuringWrites = 0
        for round in 1...20 {
            let hasCheckpoint =
                (try? FileManager.default.contentsOfDirectory(atPath: checkpoints))?.contains { $0.hasSuffix(".h5") }
                ?? false
            let process = Process()
            process.executableURL = URL(fileURLWithPath: CommandRunner.cgt)
            process.arguments =
                ["train", job, "--data", data, "--out", run, "--quiet"] + (hasCheckpoint ? ["--resume"] : [])
            process.standardOutput = FileHandle.nullDevice
            let errors = Pipe()
            process.standardError = errors
            try process.run()
            usleep(UInt32.random(in: 400_000...1_200_000, using: &generator))
            XCTAssertTrue(
                process.isRunning,
                "training stopped by itself before kill \(round): \(String(decoding: errors.fileHandleForReading.availableData, as: UTF8.self))"
            )
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            if try !checkCheckpoints(checkpoints, kill: round).isEmpty { killsWithCheckpoints += 1 }
            let names = (try? FileManager.default.contentsOfDirectory(atPath: checkpoints)) ?? []
            if names.contains(where: { $0.contains(".tmp-") }) { killsDuringWrites += 1 }
        }
        XCTAssertGreaterThan(killsWithCheckpoints, 15, "most kills came after checkpoints were written")
        print("crash safety: 20 kills, \(killsDuringWrites) of them inside a checkpoint write")
        // After the last kill, a resumed run finishes one more epoch and leaves no temporary file.
        let files = try FileManager.default.contentsOfDirectory(atPath: checkpoints).filter {
            $0.hasPrefix("epoch-") && $0.hasSuffix(".h5")
        }
        let last =
            try files.map { name in try withOpenHDF5File("\(checkpoints)/\(name)") { try $0.root.intAttribute("epoch") }
            }.max() ?? 0
        let resumed = try CommandRunner.cgt(
            ["train", job, "--data", data, "--out", run, "--resume", "--quiet", "--set", "training.epochs=\(last + 1)"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        let left = try FileManager.default.contentsOfDirectory(atPath: checkpoints).filter { $0.contains(".tmp-") }
        XCTAssertEqual(left, [], "temporary files of killed writers are removed")
        _ = try checkCheckpoints(checkpoints, kill: 21)
    }
}

/// A rank that stops answering (SIGSTOP, as a hung node) ends the job after
/// `runtime.stall_shutdown_seconds`, with a warning first and every rank stopped; the
/// BatchNorm synchronisation is watched like the gradient all-reduce.
final class StallShutdownTests: XCTestCase {
    let directory = TemporaryDirectory("stall")

    func testAStoppedRankEndsTheJob() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 8, classes: 3, train: 2048, test: 32)
        let job = try directory.write(
            """
            model: {hidden: [64, 64], exits: [1, 2]}
            training: {epochs: 100000, batch_size: 32, checkpoint_every: 1000, sync_batchnorm: true}
            runtime: {stall_warning_seconds: 1, stall_shutdown_seconds: 4}
            """, to: "job.yaml")
        let run = directory.file("run")
        let mpirun = try CommandRunner.startMPI(
            ranks: 2, ["train", job, "--data", data, "--out", run, "--quiet"], stdout: directory.file("out.txt"),
            stderr: directory.file("err.txt"))
        defer { if mpirun.isRunning { mpirun.terminate() } }
        var deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: "\(run)/job.yaml") && Date() < deadline { usleep(50_000) }
        usleep(300_000)
        let ranks = CommandRunner.children(of: mpirun.processIdentifier)
        XCTAssertEqual(ranks.count, 2, "two ranks under mpirun")
        guard let stopped = ranks.last else { return }
        kill(stopped, SIGSTOP)
        let stoppedAt = Date()
        deadline = Date().addingTimeInterval(40)
        while mpirun.isRunning && Date() < deadline { usleep(50_000) }
        let running = mpirun.isRunning
        for pid in ranks { kill(pid, SIGKILL) }
        XCTAssertFalse(running, "the job ended by itself")
        mpirun.waitUntilExit()
        XCTAssertNotEqual(mpirun.terminationStatus, 0)
        XCTAssertGreaterThan(Date().timeIntervalSince(stoppedAt), 3.5, "not before stall_shutdown_seconds")
        let errors = try String(contentsOfFile: directory.file("err.txt"), encoding: .utf8)
        XCTAssertTrue(errors.contains("warning: waited"), errors)
        XCTAssertTrue(errors.contains("more than runtime.stall_shutdown_seconds"), errors)
    }
}

/// The disk fills up during a checkpoint write (a small tmpfs): one line naming the file and
/// the reason, status 1, the previous checkpoint whole, and no temporary file left.
final class DiskFullTests: XCTestCase {
    let directory = TemporaryDirectory("disk-full")

    func testAFullDiskEndsTrainingCleanly() throws {
        let mountPoint = directory.file("small")
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        // Room for two checkpoints of this model (about 290 KB each) and the run's small files.
        guard try CommandRunner.run("/bin/mount", ["-t", "tmpfs", "-o", "size=700k", "tmpfs", mountPoint]).status == 0
        else {
            throw XCTSkip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)")
        }
        defer { _ = try? CommandRunner.run("/bin/umount", [mountPoint]) }
        let data = try Fixtures.writeDataset(in: directory, features: 200, classes: 16, train: 256, test: 32)
        let job = try directory.write(
            "model: {hidden: [64, 64], exits: [1, 2]}\ntraining: {epochs: 5, batch_size: 64, checkpoint_every: 1}\n",
            to: "job.yaml")
        let run = "\(mountPoint)/run"
        let result = try CommandRunner.cgt(["train", job, "--data", data, "--out", run, "--quiet"])
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("checkpoints/epoch-0003.h5"), result.stderr)
        XCTAssertTrue(result.stderr.contains("No space left on device"), result.stderr)
        let names = try FileManager.default.contentsOfDirectory(atPath: "\(run)/checkpoints").sorted()
        XCTAssertEqual(names, ["epoch-0001.h5", "epoch-0002.h5", "last.h5"], "no temporary file left")
        XCTAssertEqual(try withOpenHDF5File("\(run)/checkpoints/last.h5") { try $0.root.intAttribute("epoch") }, 2)
    }
}

/// The output folder becomes read-only during training (as a quota or an administrator
/// may make it): one line naming the file and the reason, status 1, the last checkpoint whole.
final class ReadOnlyFolderTests: XCTestCase {
    let directory = TemporaryDirectory("read-only")

    func testAFolderThatBecomesReadOnlyEndsTrainingCleanly() throws {
        // Root writes into read-only folders; the trainer runs as nobody then.
        let asOtherUser = getuid() == 0
        guard !asOtherUser || FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else {
            throw XCTSkip("running as root without setpriv to drop privileges")
        }
        XCTAssertEqual(chmod(directory.path, 0o777), 0)
        let data = try Fixtures.writeDataset(in: directory, features: 8, classes: 3, train: 2048, test: 32)
        let job = try directory.write(
            "model: {hidden: [64, 64], exits: [1, 2]}\ntraining: {epochs: 100000, batch_size: 32, checkpoint_every: 1}\n",
            to: "job.yaml")
        let run = directory.file("run")
        let process = Process()
        let trainer = [CommandRunner.cgt, "train", job, "--data", data, "--out", run, "--quiet"]
        process.executableURL = URL(fileURLWithPath: asOtherUser ? "/usr/bin/setpriv" : CommandRunner.cgt)
        process.arguments =
            asOtherUser
            ? ["--reuid=65534", "--regid=65534", "--clear-groups"] + trainer : Array(trainer.dropFirst())
        process.standardOutput = FileHandle.nullDevice
        let errors = directory.file("err.txt")
        XCTAssertTrue(FileManager.default.createFile(atPath: errors, contents: nil))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errors))
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        let checkpoints = "\(run)/checkpoints"
        var deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: "\(checkpoints)/epoch-0002.h5") && Date() < deadline {
            usleep(20_000)
        }
        XCTAssertEqual(chmod(checkpoints, 0o555), 0)
        XCTAssertEqual(chmod(run, 0o555), 0)
        defer {
            chmod(run, 0o755)
            chmod(checkpoints, 0o755)
        }
        deadline = Date().addingTimeInterval(60)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        XCTAssertFalse(process.isRunning, "training ends at its next checkpoint")
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 1)
        let message = try String(contentsOfFile: errors, encoding: .utf8)
        XCTAssertEqual(message.split(separator: "\n").count, 1, message)
        XCTAssertTrue(message.contains("checkpoints/epoch-"), message)
        XCTAssertTrue(message.contains("Permission denied"), message)
        XCTAssertFalse(message.contains(".tmp-"), "the message names the checkpoint, not its temporary file")
        print("read-only folder: \(message)", terminator: "")
        let names = try FileManager.default.contentsOfDirectory(atPath: checkpoints)
        XCTAssertFalse(names.contains { $0.contains(".tmp-") }, "no temporary file left: \(names)")
        let newest = names.filter { $0.hasPrefix("epoch-") }.sorted().last
        let newestEpoch = try withOpenHDF5File("\(checkpoints)/\(newest ?? "")") { try $0.root.intAttribute("epoch") }
        XCTAssertEqual(
            try withOpenHDF5File("\(checkpoints)/last.h5") { try $0.root.intAttribute("epoch") }, newestEpoch,
            "last.h5 is the newest whole checkpoint")
    }
}
