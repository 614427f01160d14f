import CGTKernels
import CGTTestSupport
import Foundation
import XCTest

/// The command-line tool as a user meets it: results on success, and on bad input one line
/// naming what and where, a non-zero exit, and nothing half-written.
final class CommandLineTests: XCTestCase {
    let directory = TemporaryDirectory("cli")

    func writeJob(_ text: String, name: String = "job.yaml") throws -> String {
        try directory.write(text, to: name)
    }

    let smallModel =
        "model: {hidden: [16, 16], exits: [1, 2]}\ntraining: {epochs: 2, batch_size: 16, checkpoint_every: 1}\n"

    func assertOneLineError(
        _ result: CommandResult, mentions words: [String], file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertNotEqual(result.status, 0, "exit status", file: file, line: line)
        let lines = result.stderr.split(separator: "\n").filter { $0.hasPrefix("cgt") }
        XCTAssertEqual(lines.count, 1, "one error line: \(result.stderr)", file: file, line: line)
        for word in words {
            XCTAssertTrue(
                result.stderr.contains(word), "'\(result.stderr)' should mention '\(word)'", file: file, line: line)
        }
    }

    func testSynthTrainEvalRoundTrip() throws {
        let data = directory.file("tiny.h5")
        XCTAssertEqual(
            try CommandRunner.cgt([
                "synth", "--out", data, "--features", "10", "--classes", "3", "--train", "64", "--test", "32",
            ]).status, 0)
        let job = try writeJob(smallModel)
        let run = directory.file("run")
        let trained = try CommandRunner.cgt(["train", job, "--data", data, "--out", run])
        XCTAssertEqual(trained.status, 0, trained.stderr)
        XCTAssertTrue(trained.stdout.contains("epoch 2/2"), trained.stdout)
        XCTAssertTrue(trained.stdout.contains("early-exit evaluation at tau 0.900"), trained.stdout)
        let evaluated = try CommandRunner.cgt([
            "eval", "--checkpoint", "\(run)/checkpoints/last.h5", "--data", data, "--tau", "0.5",
        ])
        XCTAssertEqual(evaluated.status, 0, evaluated.stderr)
        let json = try XCTUnwrap(FileManager.default.contents(atPath: "\(run)/eval/eval.json"))
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        for key in [
            "accuracy", "macro_f1", "macro_precision", "macro_recall", "exit_fractions", "per_exit_accuracy",
            "relative_cost", "tau",
        ] {
            XCTAssertNotNil(object[key], key)
        }
        XCTAssertEqual(object["tau"] as? Double ?? 0, 0.5, accuracy: 1e-6)
        XCTAssertEqual((object["exit_fractions"] as? [Double])?.count, 2)

        // At the job's tau, cgt eval of the last checkpoint reproduces training's own report.
        let again = try CommandRunner.cgt([
            "eval", "--checkpoint", "\(run)/checkpoints/last.h5", "--data", data, "--out", "\(run)/again",
        ])
        XCTAssertEqual(again.status, 0, again.stderr)
        let trained2 =
            try JSONSerialization.jsonObject(with: try Data(contentsOf: URL(fileURLWithPath: "\(run)/eval.json")))
            as? [String: Any]
        let evaluated2 =
            try JSONSerialization.jsonObject(with: try Data(contentsOf: URL(fileURLWithPath: "\(run)/again/eval.json")))
            as? [String: Any]
        XCTAssertEqual(trained2?["exit_fractions"] as? [Double], evaluated2?["exit_fractions"] as? [Double])
        XCTAssertEqual(trained2?["accuracy"] as? Double, evaluated2?["accuracy"] as? Double)
    }

    /// `cgt eval --bn-recalibration` measures a changed model, so it writes that model beside
    /// its report: evaluating the written file as stored gives the same numbers, and eval.json
    /// names it.
    func testReEstimatedStatisticsAreWrittenAsTheModelMeasured() throws {
        let data = try Fixtures.writeDataset(
            in: directory, name: "bn.h5", features: 10, classes: 3, train: 96, test: 48, spread: 4)
        let job = try writeJob(
            """
            model: {hidden: [16, 16], exits: [1, 2], batchnorm: true, dropout: 0.3}
            training: {epochs: 2, batch_size: 16}
            eval: {bn_recalibration: false}
            """, name: "bn.yaml")
        let run = directory.file("bn-run")
        XCTAssertEqual(try CommandRunner.cgt(["train", job, "--data", data, "--out", run, "--quiet"]).status, 0)
        let checkpoint = "\(run)/checkpoints/last.h5"
        let recalibrated = try CommandRunner.cgt([
            "eval", "--checkpoint", checkpoint, "--bn-recalibration", "--out", "\(run)/re-estimated",
        ])
        XCTAssertEqual(recalibrated.status, 0, recalibrated.stderr)
        XCTAssertTrue(recalibrated.stdout.contains("\(run)/re-estimated/model.h5"), recalibrated.stdout)
        let model = "\(run)/re-estimated/model.h5"
        let stored = try CommandRunner.cgt(["eval", "--checkpoint", model, "--out", "\(run)/stored"])
        XCTAssertEqual(stored.status, 0, stored.stderr)
        func report(_ folder: String) throws -> [String: Any] {
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(folder)/eval.json")))
                as? [String: Any] ?? [:]
        }
        let a = try report("\(run)/re-estimated")
        let b = try report("\(run)/stored")
        XCTAssertEqual(a["checkpoint"] as? String, model)
        XCTAssertEqual(a["batchnorm_statistics"] as? String, "re-estimated")
        XCTAssertEqual(b["batchnorm_statistics"] as? String, "re-estimated")
        XCTAssertEqual(a["confusion"] as? [[Int]], b["confusion"] as? [[Int]])
        XCTAssertEqual(a["accuracy"] as? Double, b["accuracy"] as? Double)
        let training = try report(run)
        XCTAssertEqual(training["batchnorm_statistics"] as? String, "training", "the job asked for no re-estimation")
        XCTAssertEqual(training["checkpoint"] as? String, checkpoint)
        XCTAssertEqual(training["split"] as? String, "test")
        XCTAssertEqual((training["data_sha256"] as? String)?.count, 64)
    }

    /// A policy chosen by `cgt eval` is stored in the checkpoint; later evaluations and `cgt inspect` use it.
    func testChosenExitPolicyTravelsWithTheCheckpoint() throws {
        let data = directory.file("policy.h5")
        XCTAssertEqual(
            try CommandRunner.cgt([
                "synth", "--out", data, "--features", "10", "--classes", "3", "--train", "64", "--test", "32",
            ]).status, 0)
        let run = directory.file("policy")
        XCTAssertEqual(
            try CommandRunner.cgt(["train", try writeJob(smallModel), "--data", data, "--out", run, "--quiet"]).status,
            0)
        let checkpoint = "\(run)/checkpoints/last.h5"
        let chosen = try CommandRunner.cgt([
            "eval", "--checkpoint", checkpoint, "--data", data, "--criterion", "entropy", "--fallback",
            "most_confident",
            "--sweep", "0.1:0.9:0.2", "--budget", "10", "--save-policy", "--out", "\(run)/chosen",
        ])
        XCTAssertEqual(chosen.status, 0, chosen.stderr)
        let object = try XCTUnwrap(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(run)/chosen/eval.json")))
                as? [String: Any])
        let choice = try XCTUnwrap((object["chosen_thresholds"] as? [[String: Any]])?.first?["threshold"] as? Double)
        let inspected = try CommandRunner.cgt(["inspect", checkpoint])
        XCTAssertEqual(inspected.status, 0, inspected.stderr)
        XCTAssertTrue(
            inspected.stdout.contains(
                "exit policy: entropy, thresholds [\(Float(choice)), \(Float(choice))], fallback most_confident"),
            inspected.stdout)
        XCTAssertTrue(inspected.stdout.contains("FLOPs to answer"), inspected.stdout)
        let again = try CommandRunner.cgt(["eval", "--checkpoint", checkpoint, "--data", data, "--out", "\(run)/again"])
        XCTAssertEqual(again.status, 0, again.stderr)
        let policy = try XCTUnwrap(
            (try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(run)/again/eval.json")))
                as? [String: Any])?["policy"] as? [String: Any])
        XCTAssertEqual(policy["criterion"] as? String, "entropy")
        XCTAssertEqual(policy["fallback"] as? String, "most_confident")
        XCTAssertEqual((policy["thresholds"] as? [Double])?.map { Float($0) }, [Float(choice), Float(choice)])
    }

    /// `cgt eval --risk`: a threshold certified on the validation split, stored with
    /// --save-policy, its guarantee and test result in eval.json and the terminal, the
    /// guarantee checked on halvings of the test split; refused without a validation split.
    func testRiskControlledPolicy() throws {
        let data = try Fixtures.writeDataset(
            in: directory, name: "risk.h5", features: 10, classes: 3, train: 200, test: 400, validation: 400,
            spread: 1.5)
        let run = directory.file("risk")
        XCTAssertEqual(
            try CommandRunner.cgt(["train", try writeJob(smallModel), "--data", data, "--out", run, "--quiet"]).status,
            0)
        let checkpoint = "\(run)/checkpoints/last.h5"
        let result = try CommandRunner.cgt([
            "eval", "--checkpoint", checkpoint, "--data", data, "--risk", "0.1", "--delta", "0.1",
            "--risk-resplits", "20", "--save-policy", "--out", "\(run)/risk",
        ])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("risk control: threshold "), result.stdout)
        XCTAssertTrue(result.stdout.contains("20 random halvings of the test split"), result.stdout)
        let object = try XCTUnwrap(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(run)/risk/eval.json")))
                as? [String: Any])
        let risk = try XCTUnwrap(object["risk_control"] as? [String: Any])
        XCTAssertEqual(risk["calibration_samples"] as? Int, 400)
        let choice = try XCTUnwrap(risk["choice"] as? [String: Any])
        let threshold = try XCTUnwrap(choice["threshold"] as? Double)
        let tests = try XCTUnwrap(choice["tests"] as? [[String: Any]])
        XCTAssertEqual(tests.map { $0["threshold"] as! Double }, tests.map { $0["threshold"] as! Double }.sorted(by: >))
        XCTAssertTrue(tests.dropLast().allSatisfy { ($0["p_value"] as! Double) <= 0.1 }, "\(tests)")
        XCTAssertNotNil(risk["test_risk"] as? Double)
        XCTAssertEqual((risk["resplits"] as? [String: Any])?["count"] as? Int, 20)
        let inspected = try CommandRunner.cgt(["inspect", checkpoint])
        XCTAssertTrue(
            inspected.stdout.contains("thresholds [\(Float(threshold)), \(Float(threshold))]"), inspected.stdout)

        let budgeted = try CommandRunner.cgt([
            "eval", "--checkpoint", checkpoint, "--data", data, "--budgeted", "0.3:0.9", "--out", "\(run)/budgeted",
        ])
        XCTAssertEqual(budgeted.status, 0, budgeted.stderr)
        XCTAssertTrue(budgeted.stdout.contains("budgeted (MSDNet"), budgeted.stdout)
        let curve = try XCTUnwrap(
            (try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: "\(run)/budgeted/eval.json"))) as? [String: Any])?[
                    "budgeted"] as? [String: Any])
        XCTAssertEqual(curve["fitted_on"] as? String, "validation")
        let area = try XCTUnwrap(curve["area"] as? Double)
        XCTAssertTrue(area > 0 && area <= 1, "\(area)")
        let points = try XCTUnwrap(curve["points"] as? [[String: Any]])
        XCTAssertEqual(points.count, 40)
        let costs = points.map { $0["relative_cost"] as! Double }
        XCTAssertLessThan(costs.first!, costs.last!, "q 0.05 sends samples out early, q 2 late")
        let csv = try String(contentsOfFile: "\(run)/budgeted/budgeted.csv", encoding: .utf8)
        XCTAssertEqual(csv.split(separator: "\n").count, 41)

        let plain = try Fixtures.writeDataset(in: directory, name: "plain.h5", features: 10, classes: 3)
        let refused = try CommandRunner.cgt([
            "eval", "--checkpoint", checkpoint, "--data", plain, "--risk", "0.05", "--out", "\(run)/refused",
        ])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.contains("/validation: --risk needs a validation split"), refused.stderr)
        XCTAssertEqual(refused.stderr.split(separator: "\n").count, 1, refused.stderr)
    }

    /// `cgt report` writes a page that a real browser (headless Chromium) loads with every figure laid out.
    func testReportOpensInABrowserWithEveryFigure() throws {
        let data = directory.file("report.h5")
        XCTAssertEqual(
            try CommandRunner.cgt([
                "synth", "--out", data, "--features", "10", "--classes", "3", "--train", "64", "--test", "32",
            ]).status, 0)
        let run = directory.file("reported")
        XCTAssertEqual(
            try CommandRunner.cgt(["train", try writeJob(smallModel), "--data", data, "--out", run, "--quiet"]).status,
            0)
        let result = try CommandRunner.cgt(["report", run])
        XCTAssertEqual(result.status, 0, result.stderr)
        // Loss and gate curves, exit distribution, exit per class, accuracy vs cost, reliability of 2 exits.
        let expected = 7
        let figures = try FileManager.default.contentsOfDirectory(atPath: "\(run)/figures").filter {
            $0.hasSuffix(".svg")
        }
        XCTAssertEqual(figures.count, expected, "\(figures)")
        for name in ["sweep.csv", "per_class_routing.csv", "reliability.csv", "eval.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: "\(run)/eval/\(name)"), name)
        }
        guard
            let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first(where: {
                FileManager.default.isExecutableFile(atPath: $0)
            })
        else {
            return XCTFail("chromium is not installed (launch/setup installs it)")
        }
        let profile = directory.file("chromium-profile")
        let browser = try CommandRunner.run(
            chromium,
            [
                "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=\(profile)",
                "--dump-dom", "file://\(run)/report.html",
            ])
        XCTAssertEqual(browser.status, 0, browser.stderr)
        XCTAssertTrue(browser.stdout.contains("data-figures=\"\(expected)\""), "the page holds every figure")
        XCTAssertTrue(
            browser.stdout.contains("data-figures-rendered=\"\(expected)\""),
            "every figure is laid out with a size: \(browser.stdout.prefix(300))")
    }

    func testUnknownKeyStopsBeforeAnythingIsWritten() throws {
        let job = try writeJob("optimiser: {lr: 0.1}\n")
        let run = directory.file("never")
        let result = try CommandRunner.cgt(["train", job, "--out", run])
        assertOneLineError(result, mentions: [job, "optimiser", "unknown key", "did you mean 'optimizer'"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: run))
    }

    func testBadOverride() throws {
        let job = try writeJob(smallModel)
        assertOneLineError(
            try CommandRunner.cgt(["train", job, "--set", "method.tau=2", "--out", directory.file("r")]),
            mentions: ["method.tau"])
    }

    func testMissingDataFile() throws {
        let job = try writeJob(smallModel)
        let missing = directory.file("missing.h5")
        let result = try CommandRunner.cgt(["train", job, "--data", missing, "--out", directory.file("r")])
        assertOneLineError(result, mentions: [missing, "cannot open"])
    }

    func testMissingJobFile() throws {
        assertOneLineError(
            try CommandRunner.cgt(["train", directory.file("nope.yaml")]), mentions: ["nope.yaml", "no such job file"])
    }

    func testRefusesToOverwriteARun() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 10, classes: 3, train: 64, test: 32)
        let job = try writeJob(smallModel)
        let run = directory.file("run")
        XCTAssertEqual(try CommandRunner.cgt(["train", job, "--data", data, "--out", run, "--quiet"]).status, 0)
        let before = try Data(contentsOf: URL(fileURLWithPath: "\(run)/checkpoints/last.h5"))
        let again = try CommandRunner.cgt(["train", job, "--data", data, "--out", run])
        assertOneLineError(again, mentions: ["already holds checkpoints", "--resume"])
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: "\(run)/checkpoints/last.h5")), before, "nothing lost")
    }

    /// A run folder works from anywhere: the job stores its data path resolved; a checkpoint
    /// whose data is gone says so and what to give. `synth` refuses to overwrite; `--version`.
    func testRunsArePortableAndFilesAreNotOverwritten() throws {
        let data = directory.file("portable.h5")
        let synth = ["synth", "--out", data, "--features", "10", "--classes", "3", "--train", "64", "--test", "32"]
        XCTAssertEqual(try CommandRunner.cgt(synth).status, 0)
        assertOneLineError(try CommandRunner.cgt(synth), mentions: ["portable.h5: already exists; pass --force"])
        XCTAssertEqual(try CommandRunner.cgt(synth + ["--force"]).status, 0)
        let job = try writeJob(smallModel, name: "portable.yaml")
        let folder = directory.file("work")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        XCTAssertEqual(
            try CommandRunner.cgt(["train", job, "--data", "../portable.h5", "--out", "run", "--quiet"], in: folder)
                .status, 0)
        let checkpoint = "\(folder)/run/checkpoints/last.h5"
        let evaluated = try CommandRunner.cgt(["eval", "--checkpoint", checkpoint, "--out", directory.file("e")])
        XCTAssertEqual(evaluated.status, 0, evaluated.stderr)
        try FileManager.default.removeItem(atPath: data)
        assertOneLineError(
            try CommandRunner.cgt(["eval", "--checkpoint", checkpoint]),
            mentions: ["its data.path \(data) does not exist here; give the data file with --data"])
        let version = try CommandRunner.cgt(["--version"])
        XCTAssertEqual(version.status, 0)
        XCTAssertTrue(version.stdout.hasPrefix("0."), version.stdout)
    }

    func testEvalOfMissingCheckpoint() throws {
        assertOneLineError(
            try CommandRunner.cgt(["eval", "--checkpoint", directory.file("none.h5")]),
            mentions: ["none.h5", "no such file"])
    }

    func testEvalOfADatasetWithOtherFeatures() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 10, classes: 3, train: 64, test: 32)
        let other = try Fixtures.writeDataset(
            in: directory, name: "other.h5", features: 7, classes: 3, train: 64, test: 32)
        let job = try writeJob(smallModel)
        let run = directory.file("run")
        XCTAssertEqual(try CommandRunner.cgt(["train", job, "--data", data, "--out", run, "--quiet"]).status, 0)
        let result = try CommandRunner.cgt(["eval", "--checkpoint", "\(run)/checkpoints/last.h5", "--data", other])
        assertOneLineError(result, mentions: [other, "feature_shape"])
    }

    func testEveryRankStopsOnABadJob() throws {
        let job = try writeJob("training: {epochs: zero}\n")
        let result = try CommandRunner.mpirun(ranks: 2, ["train", job, "--out", directory.file("r")])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("training.epochs"), result.stderr)
    }

    func testTwoRanksTrain() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 10, classes: 3, train: 64, test: 32)
        let job = try writeJob(smallModel)
        let run = directory.file("mpi")
        let result = try CommandRunner.mpirun(ranks: 2, ["train", job, "--data", data, "--out", run])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(
            result.stdout.components(separatedBy: "epoch 2/2").count - 1, 1, "only rank 0 reports: \(result.stdout)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(run)/eval.json"))
    }

    func testBenchPrintsItsMeasurements() throws {
        // Forward, weight and input gradient of each convolution (no input gradient for the
        // first), plus the heads' Linear products: the paper CNN's matrix FLOPs per sample.
        let convolutions: [Double] = [2 * 32 * 9 * 784, 2 * 64 * 32 * 9 * 196, 2 * 128 * 64 * 9 * 49]
        let heads: Double = 3 * 2 * 10 * (32 + 64 + 128)
        let cnnFLOPs: Double = 3 * convolutions.reduce(0, +) - convolutions[0] + heads
        // The ResNet (stem 16; stages 16, 32, 64 at 28, 14, 7 pixels; 1x1 projections where the
        // channels change): every convolution inside a residual block counts.
        let stem: Double = 2 * 16 * 9 * 784
        let stages: [Double] = [
            2 * 16 * 16 * 9 * 784 * 2,
            2 * 32 * 16 * 9 * 196 + 2 * 32 * 32 * 9 * 196 + 2 * 32 * 16 * 196,
            2 * 64 * 32 * 9 * 49 + 2 * 64 * 64 * 9 * 49 + 2 * 64 * 32 * 49,
        ]
        let resnetFLOPs: Double = 3 * (stem + stages.reduce(0, +)) - stem + 3 * 2 * 10 * (16 + 32 + 64)
        for model in ["mlp", "cnn", "resnet"] {
            let result = try CommandRunner.cgt(["bench", "--model", model, "--steps", "2", "--batch", "8", "--json"])
            XCTAssertEqual(result.status, 0, result.stderr)
            let object = try XCTUnwrap(
                try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
            for key in [
                "samplesPerSecond", "trainingGFLOPs", "sgemmGFLOPs", "ratioToSgemm", "kernelTarget", "cpu", "model",
            ] {
                XCTAssertNotNil(object[key], key)
            }
            if model == "cnn" {
                let counted = try XCTUnwrap(object["matrixFLOPsPerSample"] as? Double)
                XCTAssertEqual(counted, cnnFLOPs, accuracy: 1, "matrix FLOPs of the paper CNN")
            }
            if model == "resnet" {
                let counted = try XCTUnwrap(object["matrixFLOPsPerSample"] as? Double)
                XCTAssertEqual(counted, resnetFLOPs, accuracy: 1, "matrix FLOPs of the ResNet")
            }
        }
    }

    /// `bench --data` reads, on each rank, the rows of one epoch a training run there would
    /// read; the byte counts follow from the file's chunks (one chunk of x, 240 rows of 12
    /// float32, and one of y, 240 int32, both read whole by every rank).
    func testBenchMeasuresReadingADataFile() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 12, classes: 3, train: 240, test: 32)
        for shuffle in ["global", "local"] {
            let result = try CommandRunner.mpirun(
                ranks: 2, ["bench", "--data", data, "--batch", "32", "--shuffle", shuffle, "--json"])
            XCTAssertEqual(result.status, 0, result.stderr)
            let object = try XCTUnwrap(
                try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], result.stdout)
            XCTAssertEqual(object["ranks"] as? Int, 2)
            XCTAssertEqual(object["shuffle"] as? String, shuffle)
            XCTAssertEqual(object["featureStorage"] as? String, "float32")
            let ranks = try XCTUnwrap(object["perRank"] as? [[String: Any]])
            XCTAssertEqual(ranks.map { $0["samples"] as? Int }, [120, 120], "each rank half of the 240")
            for rank in ranks {
                XCTAssertEqual(rank["bytesDecompressed"] as? Int, 240 * 12 * 4 + 240 * 4)
                let read = try XCTUnwrap(rank["bytesRead"] as? Int)
                XCTAssertGreaterThan(read, 0)
                XCTAssertLessThanOrEqual(read, 240 * 12 * 4 + 240 * 4 + 64, "deflate adds at most a few bytes")
                XCTAssertGreaterThan(try XCTUnwrap(rank["samplesPerSecond"] as? Double), 0)
            }
        }
        let line = try CommandRunner.cgt(["bench", "--data", data])
        XCTAssertEqual(line.status, 0, line.stderr)
        XCTAssertTrue(line.stdout.hasPrefix("data read: 1 rank, \(data)"), line.stdout)
        XCTAssertEqual(line.stdout.split(separator: "\n").count, 1, "one line per run")
        let missing = try CommandRunner.cgt(["bench", "--data", directory.file("absent.h5")])
        assertOneLineError(missing, mentions: ["absent.h5", "cannot open"])
    }

    /// The benchmark says what it ran on and how much of the core it used: oneDNN's instruction
    /// set, each convolution pass's implementation, the measured FMA peak and the fraction of it.
    func testBenchReportsTheEngineAndThePeak() throws {
        let result = try CommandRunner.cgt([
            "bench", "--model", "cnn", "--channels", "16,16", "--image", "1,8,8", "--exits", "1,2",
            "--steps", "1", "--batch", "4", "--json",
        ])
        XCTAssertEqual(result.status, 0, result.stderr)
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let engine = try XCTUnwrap(object["engine"] as? String)
        XCTAssertTrue(engine.hasPrefix("oneDNN "), engine)
        XCTAssertTrue(engine.hasSuffix(", 1 thread"), "one thread per rank by default: \(engine)")
        let convolutions = try XCTUnwrap(object["convolutions"] as? [String])
        XCTAssertEqual(convolutions.count, 2)
        XCTAssertTrue(
            convolutions.allSatisfy { $0.contains("forward ") && $0.contains("backward weights ") }, "\(convolutions)")
        let peak = try XCTUnwrap(object["fmaPeakGFLOPs"] as? Double)
        let fraction = try XCTUnwrap(object["peakFraction"] as? Double)
        let training = try XCTUnwrap(object["trainingGFLOPs"] as? Double)
        XCTAssertGreaterThan(peak, 0)
        XCTAssertEqual(fraction, training / peak, accuracy: 1e-9 * max(1, fraction))
    }
}
