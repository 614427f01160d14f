import CGTJob
import CGTModel
import XCTest

/// Job files: defaults, overrides, and one clear line for every mistake.
final class JobLoaderTests: XCTestCase {
    func testEmptyJobIsThePaperDefaults() throws {
        let job = try JobLoader.parse("{}", source: "empty.yaml")
        XCTAssertEqual(job.model.hidden, [256, 256, 256, 256, 256])
        XCTAssertEqual(job.model.exits, [1, 3, 5])
        XCTAssertEqual(job.model.dropout, 0.2)
        XCTAssertEqual(job.method.name.rawValue, "softcgt")
        XCTAssertEqual(job.method.tau, 0.9)
        XCTAssertEqual(job.optimizer.name.rawValue, "adam")
    }

    func testValuesAndOverrides() throws {
        let text = """
            name: t
            method: {name: hardcgt, tau: 0.8}
            optimizer: {name: sgd, lr: 0.05}
            """
        let job = try JobLoader.parse(
            text, source: "t.yaml",
            overrides: [
                "optimizer.lr=1e-3", "model.hidden=[32, 16]", "model.exits=[1,2]", "training.seed=7",
                "schedule.name=cosine",
            ])
        XCTAssertEqual(job.method.name.rawValue, "hardcgt")
        XCTAssertEqual(job.method.tau, 0.8)
        XCTAssertEqual(job.optimizer.name.rawValue, "sgd")
        XCTAssertEqual(job.optimizer.lr, 1e-3)
        XCTAssertEqual(job.model.hidden, [32, 16])
        XCTAssertEqual(job.training.seed, 7)
        XCTAssertEqual(job.schedule.name.rawValue, "cosine")
    }

    func testResolvedYAMLReadsBackToTheSameJob() throws {
        let job = try JobLoader.parse("method: {name: branchynet, weights: [0.5, 0.3, 0.2]}", source: "b.yaml")
        let again = try JobLoader.parse(try JobLoader.yaml(job), source: "resolved")
        XCTAssertEqual(job, again)
    }

    private func assertError(
        _ text: String, overrides: [String] = [], key: String, mentions words: [String] = [],
        file: StaticString = #filePath, line: UInt = #line
    ) {
        do {
            _ = try JobLoader.parse(text, source: "job.yaml", overrides: overrides)
            XCTFail("accepted: \(text) \(overrides)", file: file, line: line)
        } catch let error as JobError {
            XCTAssertEqual(error.key, key, "\(error)", file: file, line: line)
            XCTAssertFalse(error.description.contains("\n"), file: file, line: line)
            XCTAssertTrue(error.description.hasPrefix(error.source), file: file, line: line)
            for word in words {
                XCTAssertTrue(
                    error.description.contains(word), "'\(error)' should mention '\(word)'", file: file, line: line)
            }
        } catch {
            XCTFail("unexpected \(type(of: error)): \(error)", file: file, line: line)
        }
    }

    func testUnknownKeysAreNamedWithASuggestion() {
        assertError("optimiser: {lr: 0.1}", key: "optimiser", mentions: ["unknown key", "optimizer"])
        assertError("optimizer: {learning_rate: 0.1}", key: "optimizer.learning_rate", mentions: ["unknown key"])
        assertError("model: {hiden: [3]}", key: "model.hiden", mentions: ["hidden"])
        assertError("{}", overrides: ["training.epoch=3"], key: "training.epoch", mentions: ["epochs"])
    }

    func testTypeMismatchNamesTheKey() {
        assertError("optimizer: {lr: fast}", key: "optimizer.lr", mentions: ["number"])
        assertError("training: {epochs: [1, 2]}", key: "training.epochs")
    }

    func testInvalidValuesNameTheKey() {
        assertError("method: {tau: 1.5}", key: "method.tau", mentions: ["(0, 1)"])
        assertError("method: {name: magic}", key: "method.name", mentions: ["hardcgt"])
        assertError("method: {name: branchynet}", key: "method.weights")
        assertError("method: {name: branchynet, weights: [1, 2]}", key: "method.weights", mentions: ["3"])
        assertError("method: {name: softcgt, weights: [1, 2, 3]}", key: "method.weights")
        assertError("model: {exits: [1, 3]}", key: "model.exits", mentions: ["last"])
        assertError("model: {exits: [3, 1, 5]}", key: "model.exits")
        assertError("model: {dropout: 1.0}", key: "model.dropout")
        assertError("training: {batch_size: 1}", key: "training.batch_size")
        assertError("optimizer: {name: rmsprop}", key: "optimizer.name")
        assertError("optimizer: {lr: -1}", key: "optimizer.lr")
        assertError("schedule: {name: linear}", key: "schedule.name")
        assertError("eval: {bn_recalibration_batches: 0}", key: "eval.bn_recalibration_batches")
    }

    func testResNetSection() throws {
        let job = try JobLoader.parse(
            "model: {kind: resnet, stem_channels: 8, channels: [8, 16], blocks_per_stage: 2, exits: [1, 2]}",
            source: "resnet.yaml")
        XCTAssertEqual(job.model.kind, .resnet)
        XCTAssertEqual(job.model.stemChannels, 8)
        XCTAssertEqual(job.model.blocksPerStage, 2)
        XCTAssertEqual(job.model.blockCount, 2)
        XCTAssertNoThrow(try job.checkInput(featureShape: [1, 2, 2], source: "data.h5"))
        XCTAssertThrowsError(try job.checkInput(featureShape: [1, 1, 4], source: "data.h5")) { error in
            XCTAssertEqual((error as? JobError)?.key, "model.channels", "\(error)")
        }
        XCTAssertThrowsError(try job.checkInput(featureShape: [16], source: "data.h5")) { error in
            XCTAssertTrue("\(error)".contains("resnet needs images"), "\(error)")
        }
        let network = job.makeNetwork(featureShape: [1, 12, 12], classes: 4)
        XCTAssertEqual(network.blocks.map { $0.layers.map(\.name) }, [["conv", "bn", "0", "1"], ["pool", "0", "1"]])
        XCTAssertEqual(network.exitBlocks, [0, 1])
        let names = network.store.parameterSlots.map(\.name)
        XCTAssertEqual(names.first, "blocks.0.conv.weight")
        XCTAssertTrue(names.contains("blocks.1.0.downsample.0.weight"))
        XCTAssertFalse(names.contains("blocks.1.1.downsample.0.weight"))
        XCTAssertFalse(names.contains("blocks.0.0.downsample.0.weight"))
        // The size estimate made without building the network is an upper one, and not far off.
        let estimate = job.estimatedModelSize(featureShape: [1, 12, 12], classes: 4).parameters
        XCTAssertGreaterThanOrEqual(estimate, Double(network.store.parameterCount))
        XCTAssertLessThan(estimate, 1.2 * Double(network.store.parameterCount))
        // The resolved job keeps the new keys.
        let again = try JobLoader.parse(try JobLoader.yaml(job), source: "resolved")
        XCTAssertEqual(again, job)
    }

    func testInvalidResNetValuesNameTheKey() {
        let resnet = "kind: resnet, exits: [1, 2, 3]"
        assertError("model: {\(resnet), stem_channels: 0}", key: "model.stem_channels")
        assertError("model: {\(resnet), blocks_per_stage: 0}", key: "model.blocks_per_stage")
        assertError("model: {\(resnet), batchnorm: false}", key: "model.batchnorm", mentions: ["always"])
        assertError("model: {\(resnet), kernel_size: 2}", key: "model.kernel_size")
        assertError("model: {kind: resnet, channels: [], exits: [1]}", key: "model.channels")
        assertError("model: {kind: resnet, channels: [8, 8], exits: [1, 3]}", key: "model.exits", mentions: ["(2)"])
        assertError("model: {kind: resnet50}", key: "model.kind", mentions: ["resnet"])
    }

    func testStagedSchemesAreValidated() {
        assertError("method: {name: co, stage_epochs: [10, 10]}", key: "method.stage_epochs", mentions: ["3"])
        assertError("method: {name: co, stage_epochs: [10, 10, 10]}", key: "method.stage_epochs", mentions: ["100"])
        assertError("method: {name: softcgt, stage_epochs: [50, 25, 25]}", key: "method.stage_epochs")
        assertError("method: {name: co}\ntraining: {regime: mixed}", key: "training.regime")
        assertError("training: {regime: sideways}", key: "training.regime", mentions: ["disjoint"])
        assertError("training: {regime: mixed, backbone_epochs: 100}", key: "training.backbone_epochs")
        assertError("training: {backbone_epochs: 10}", key: "training.backbone_epochs")
        assertError(
            "training: {exit_start_epochs: [5, 10, 20]}", key: "training.exit_start_epochs", mentions: ["starting at 0"]
        )
        assertError("training: {exit_start_epochs: [0, 20, 10]}", key: "training.exit_start_epochs")
        assertError("training: {exit_start_epochs: [0, 10]}", key: "training.exit_start_epochs")
        assertError("training: {exit_start_epochs: [0, 10, 20], regime: disjoint}", key: "training.exit_start_epochs")
        assertError("method: {name: classynet}", key: "method.weights")
        assertError(
            "method: {name: classynet, weights: [1, 1, 1], class_groups: [[0, 1]]}", key: "method.class_groups",
            mentions: ["2"])
        assertError(
            "method: {name: classynet, weights: [1, 1, 1], class_groups: [[0], [1]], group_size: 2}",
            key: "method.class_groups")
        assertError(
            "method: {name: classynet, weights: [1, 1, 1], grouping_epochs: 100}", key: "method.grouping_epochs")
        assertError("method: {name: softcgt, group_size: 3}", key: "method.group_size")
        assertError("method: {anneal: {from: [1, 1], to: [1, 1, 1]}}", key: "method.anneal")
        assertError("method: {anneal: {from: [1, 1, 1], to: [1, 1, 1], epochs: 0}}", key: "method.anneal.epochs")
        assertError(
            "method: {anneal: {from: [1, 1, 1], to: [1, 1, 1], steps: 3}}", key: "method.anneal.steps",
            mentions: ["unknown key"])
        assertError("method: {leak: -0.1}", key: "method.leak")
        assertError("method: {spread: -1}", key: "method.spread")
        assertError("method: {name: branchynet, weights: [1, 0.5, 0.2], spread: 0.8}", key: "method.spread")
        assertError("method: {normalize_weights: maybe}", key: "method.normalize_weights")
        assertError("method: {distillation: {weight: -1}}", key: "method.distillation.weight")
        assertError("method: {distillation: {temperature: 0}}", key: "method.distillation.temperature")
        assertError("method: {distillation: {alpha: 0.5}}", key: "method.distillation.alpha", mentions: ["unknown key"])
        assertError(
            "method: {name: classynet, weights: [1, 1, 1], boosting: true}", key: "method.boosting",
            mentions: ["same classes"])
        assertError("method: {name: co, gradient_equilibrium: true}", key: "method.gradient_equilibrium")
        assertError("method: {name: co, distillation: {}}", key: "method.distillation")
        assertError("training: {label_smoothing: 1.0}", key: "training.label_smoothing")
    }

    /// A key of another method is refused at decode, naming it; SoftCGT's sharpness and score,
    /// which job.yaml writes for every method, read back at their defaults.
    func testOptionsOfAnotherMethodAreRefused() throws {
        assertError("method: {name: hardcgt, sharpness: 2}", key: "method.sharpness", mentions: ["softcgt"])
        assertError(
            "method: {name: branchynet, weights: [1, 1, 1], score: true_class_probability}", key: "method.score")
        assertError("method: {name: softcgt, l2w: {hidden: 8}}", key: "method.l2w", mentions: ["only l2w"])
        assertError("method: {name: co, spread: 0.5}", key: "method.spread")
        assertError(
            "method: {name: softcgt}", overrides: ["method.name=co", "method.grouping_epochs=3"],
            key: "method.grouping_epochs", mentions: ["classynet", "(from method.grouping_epochs=3)"])
        let hard = try JobLoader.parse(
            "method: {name: hardcgt, sharpness: 1, score: max_probability, spread: 0.5}", source: "h.yaml")
        XCTAssertEqual(hard.method.choice, .hardCGT(spread: 0.5))
    }

    /// Each method's options land in its case, defaults filled in, and its resolved YAML reads
    /// back to the same job.
    func testEveryMethodReadsBackFromItsResolvedYAML() throws {
        let cases: [(String, MethodChoice)] = [
            ("{name: hardcgt}", .hardCGT(spread: nil)),
            (
                "{name: softcgt, sharpness: 4, score: true_class_probability, spread: 0.5}",
                .softCGT(sharpness: 4, score: .trueClassProbability, spread: 0.5)
            ),
            ("{name: branchynet, weights: [1, 0.5, 0.25]}", .branchyNet(weights: [1, 0.5, 0.25])),
            ("{name: co}", .cascadeOptimization(stageEpochs: nil)),
            ("{name: co, stage_epochs: [50, 25, 25]}", .cascadeOptimization(stageEpochs: [50, 25, 25])),
            (
                "{name: classynet, weights: [1, 1, 1], class_groups: [[0], [1, 2]]}",
                .classyNet(weights: [1, 1, 1], groups: .given([[0], [1, 2]]))
            ),
            (
                "{name: classynet, weights: [1, 1, 1], group_size: 2}",
                .classyNet(weights: [1, 1, 1], groups: .chosen(groupSize: 2, groupingEpochs: nil))
            ),
            ("{name: l2w}", .l2w(spread: MethodChoice.l2wSpread, network: L2WSection())),
        ]
        for (text, choice) in cases {
            let job = try JobLoader.parse("method: \(text)", source: "m.yaml")
            XCTAssertEqual(job.method.choice, choice, text)
            let resolved = try JobLoader.yaml(job)
            XCTAssertEqual(try JobLoader.parse(resolved, source: "resolved"), job, text)
            XCTAssertEqual(try JobLoader.yaml(try JobLoader.parse(resolved, source: "resolved")), resolved, text)
        }
    }

    /// The resolved job of every shipped job file reads back to itself, job.yaml byte for byte.
    func testShippedJobsReadBackFromTheirResolvedYAML() throws {
        let jobs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("jobs")
        let files = (FileManager.default.enumerator(atPath: jobs.path)?.compactMap { $0 as? String } ?? []).filter {
            $0.hasSuffix(".yaml") && !$0.hasPrefix("grids/")
        }
        XCTAssertFalse(files.isEmpty)
        for file in files {
            let job = try JobLoader.load(path: jobs.appendingPathComponent(file).path)
            let resolved = try JobLoader.yaml(job)
            let again = try JobLoader.parse(resolved, source: "resolved")
            XCTAssertEqual(again, job, file)
            XCTAssertEqual(try JobLoader.yaml(again), resolved, file)
        }
    }

    func testMalformedInput() {
        assertError("model: [unclosed", key: "", mentions: ["not valid YAML"])
        assertError("- a list", key: "", mentions: ["mapping"])
        assertError("{}", overrides: ["no-equals-sign"], key: "no-equals-sign", mentions: ["key=value"])
        assertError("{}", overrides: ["model.kind.deeper=3"], key: "model.kind", mentions: ["single value"])
    }

    /// The override named in an error is the one that set the bad value: list elements set as
    /// `weights[1]=` match the error's `weights.1`, and of two overrides of a key the later one.
    func testAnErrorNamesTheOverrideThatCausedIt() {
        let base = "method: {name: branchynet, weights: [1, 1, 1]}\nmodel: {hidden: [8, 8], exits: [0, 1]}"
        assertError(
            base, overrides: ["method.weights[1]=abc"], key: "method.weights.1",
            mentions: ["--set: ", "(from method.weights[1]=abc)"])
        assertError(
            "{}", overrides: ["training.epochs=3", "training.epochs=abc"], key: "training.epochs",
            mentions: ["(from training.epochs=abc)"])
    }

    func testOverrideErrorsNameWhereTheOverrideCameFrom() {
        let source = "grid.yaml: parameters of trial-000"
        for override in ["model.kind.deeper=3", "no-equals-sign", "method.weights[7]=1"] {
            XCTAssertThrowsError(
                try JobLoader.parse("{}", source: "job.yaml", overrides: [override], overridesSource: source)
            ) { error in
                XCTAssertTrue("\(error)".hasPrefix(source + ": "), "\(error)")
            }
        }
    }

    func testMissingFile() {
        XCTAssertThrowsError(try JobLoader.load(path: "/nonexistent/job.yaml")) { error in
            XCTAssertEqual("\(error)", "/nonexistent/job.yaml: no such job file")
        }
    }
}

/// `training.shuffle_buffer`: auto, rows or a size, written back as given.
final class ShuffleBufferKeyTests: XCTestCase {
    func testTheKeyReadsAutoRowsAndSizesAndWritesThemBack() throws {
        XCTAssertNil(try JobLoader.parse("{}", source: "j.yaml").training.shuffleBuffer)
        for (text, expected) in [
            ("auto", ShuffleBufferSize.automatic), ("20000", .rows(20000)), ("'64M'", .bytes(64 << 20)),
            ("2G", .bytes(2 << 30)),
        ] {
            let job = try JobLoader.parse("training: {shuffle_buffer: \(text)}", source: "j.yaml")
            XCTAssertEqual(job.training.shuffleBuffer, expected, text)
            XCTAssertEqual(
                try JobLoader.parse(try JobLoader.yaml(job), source: "again").training.shuffleBuffer, expected)
        }
        let overridden = try JobLoader.parse("{}", source: "j.yaml", overrides: ["training.shuffle_buffer=512M"])
        XCTAssertEqual(overridden.training.shuffleBuffer, .bytes(512 << 20))
        for bad in ["0", "-3", "lots", "1.5G"] {
            XCTAssertThrowsError(try JobLoader.parse("training: {shuffle_buffer: \(bad)}", source: "j.yaml")) { error in
                let message = "\(error)"
                XCTAssertTrue(message.contains("training.shuffle_buffer"), message)
                XCTAssertTrue(message.contains("auto, a number of rows"), message)
                XCTAssertFalse(message.contains("\n"), message)
            }
        }
    }
}
