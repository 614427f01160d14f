import CGTCheckpoint
import CGTData
import CGTJob
import CGTModel
import CGTTestSupport
import Foundation
import XCTest

@testable import CGTEvaluation
@testable import CGTTraining

/// Training end to end on small synthetic data, on one process.
final class TrainerTests: XCTestCase {
    let directory = TemporaryDirectory("trainer")

    func job(data: String, epochs: Int, method: String = "softcgt", extra: [String] = []) throws -> Job {
        var overrides = [
            "data.path=\(data)", "model.hidden=[32, 32, 32]", "model.exits=[1, 2, 3]", "model.dropout=0.2",
            "training.epochs=\(epochs)", "training.batch_size=32", "training.checkpoint_every=2",
            "method.name=\(method)", "optimizer.lr=0.005", "training.seed=3",
        ]
        if method == "branchynet" { overrides.append("method.weights=[1.0, 0.5, 0.25]") }
        return try JobLoader.parse("name: test", source: "test", overrides: overrides + extra)
    }

    func train(_ job: Job, folder: String, resume: Bool = false) throws -> RoutingStatistics {
        let trainer = try Trainer(
            job: job, run: RunDirectory(path: directory.file(folder)), communicator: nil, resume: resume,
            progress: ProgressReporter(enabled: false))
        return try trainer.run()
    }

    func testEveryMethodLearnsAndWritesTheRunFolder() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 12, classes: 3, train: 240, test: 120, spread: 1)
        for method in ["softcgt", "hardcgt", "branchynet"] {
            let stats = try train(try job(data: data, epochs: 5, method: method), folder: method)
            XCTAssertGreaterThan(stats.accuracy, 0.9, method)
            XCTAssertEqual(stats.exitFractions.reduce(0, +), 1, accuracy: 1e-9)
            let run = RunDirectory(path: directory.file(method))
            for file in [
                run.jobFile, run.metricsFile, run.lastCheckpoint, run.checkpoint(epoch: 2), run.checkpoint(epoch: 4),
                run.checkpoint(epoch: 5), run.evaluationFile,
            ] {
                XCTAssertTrue(FileManager.default.fileExists(atPath: file), file)
            }
            let metrics = try MetricsLog.read(run.metricsFile)
            XCTAssertEqual(metrics.map(\.epoch), [1, 2, 3, 4, 5])
            XCTAssertEqual(metrics.last?.globalStep, 5 * (240 / 32), "the 16 samples left over join the seventh batch")
            XCTAssertEqual(
                metrics[0].gateMean[0], 1,
                "the first exit always has weight 1 under CGT and 1 under the job's BranchyNet weights")
            let files = try FileManager.default.subpathsOfDirectory(atPath: run.path)
            XCTAssertFalse(files.contains { $0.contains(".tmp") }, "no temporary files left: \(files)")
            let reread = try JobLoader.load(path: run.jobFile)
            XCTAssertEqual(reread, try job(data: data, epochs: 5, method: method))
        }
    }

    /// L2W: the weight prediction network learns from meta steps (its parameters move from
    /// their initial values), its centred weights vary over samples around 1, and the backbone
    /// learns as under the other methods.
    func testL2WLearnsItsWeightsAndTheBackboneLearns() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 12, classes: 3, train: 240, test: 120, spread: 1)
        let job = try job(
            data: data, epochs: 4, method: "l2w", extra: ["method.l2w.hidden=8", "method.l2w.meta_lr=0.01"])
        let trainer = try Trainer(
            job: job, run: RunDirectory(path: directory.file("l2w")), communicator: nil, resume: false,
            progress: ProgressReporter(enabled: false))
        let weights = try XCTUnwrap(trainer.weighting as? LearnedExitWeights)
        let initial = Array(weights.store.parameters)
        let stats = try trainer.run()
        XCTAssertGreaterThan(stats.accuracy, 0.9)
        let moved = zip(initial, weights.store.parameters).filter { $0 != $1 }.count
        // Hidden units whose ReLU never opens get no gradient; the others move.
        XCTAssertGreaterThan(moved, initial.count / 2, "the weight network's parameters moved")
        let metrics = try MetricsLog.read(RunDirectory(path: directory.file("l2w")).metricsFile)
        for m in metrics {
            for gate in m.gateMean { XCTAssertEqual(gate, 1, accuracy: 1e-4, "spread weights average 1 per exit") }
        }
        let gates = trainer.objective.lastGates(batch: weights.lastBatch)
        // Samples the exits all get right have losses near 0, so the same weights; the others differ.
        XCTAssertGreaterThan(Set(gates).count, 10, "the weights differ from sample to sample")
        // The weight network is in the checkpoint: a resumed trainer weighs with the trained one.
        let resumed = try Trainer(
            job: job, run: RunDirectory(path: directory.file("l2w")), communicator: nil, resume: true,
            progress: ProgressReporter(enabled: false))
        let restored = try XCTUnwrap(resumed.weighting as? LearnedExitWeights)
        XCTAssertEqual(Array(restored.store.parameters), Array(weights.store.parameters))
        XCTAssertEqual(restored.optimizer.stepCount, weights.optimizer.stepCount)
    }

    func testHardCGTStarvesDeepExitsOnceShallowOnesAreConfident() throws {
        let data = try Fixtures.writeDataset(
            in: directory, features: 12, classes: 3, train: 240, test: 120, spread: 0.3)
        _ = try train(try job(data: data, epochs: 6, method: "hardcgt"), folder: "hard")
        let metrics = try MetricsLog.read(RunDirectory(path: directory.file("hard")).metricsFile)
        let last = try XCTUnwrap(metrics.last)
        XCTAssertLessThan(
            last.gateMean[2], 0.2, "on an easy problem exit 1 answers almost everything, so exit 3 learns from little")
        XCTAssertLessThanOrEqual(last.gateMean[2], last.gateMean[1])
    }

    /// Label smoothing 0.6 over 3 classes makes 0.6 the confidence a head is trained towards,
    /// so at tau 0.9 no shallow exit answers, while the same job without smoothing exits early.
    func testLabelSmoothingCapsTheConfidenceHeadsLearn() throws {
        let data = try Fixtures.writeDataset(
            in: directory, features: 12, classes: 3, train: 240, test: 120, spread: 0.3)
        let plain = try train(try job(data: data, epochs: 6), folder: "unsmoothed")
        XCTAssertGreaterThan(plain.exitFractions[0], 0.5, "an easy problem: exit 1 answers most samples")
        let smoothed = try train(
            try job(data: data, epochs: 6, extra: ["training.label_smoothing=0.6"]), folder: "smoothed")
        XCTAssertEqual(smoothed.exitFractions[2], 1, "no head reaches confidence 0.9")
        XCTAssertGreaterThan(smoothed.accuracy, 0.9, "smoothing leaves the predictions right")
    }

    /// keep_best keeps the epoch with the best validation score as best.h5, also across a
    /// resume, and refuses data without a validation split.
    func testKeepBestKeepsTheBestValidationEpoch() throws {
        let plain = try Fixtures.writeDataset(
            in: directory, name: "plain.h5", features: 12, classes: 3, train: 150, test: 60, spread: 2)
        XCTAssertThrowsError(
            try train(try job(data: plain, epochs: 2, extra: ["training.keep_best=accuracy"]), folder: "no-validation")
        ) {
            XCTAssertTrue("\($0)".contains("training.keep_best") && "\($0)".contains("validation split"), "\($0)")
        }
        let data = try Fixtures.writeDataset(
            in: directory, name: "validated.h5", features: 12, classes: 3, train: 150, test: 60, validation: 45,
            spread: 2)
        let extra = ["training.keep_best=macro_f1", "optimizer.lr=0.05"]
        _ = try train(try job(data: data, epochs: 8, extra: extra), folder: "best")
        let run = RunDirectory(path: directory.file("best"))
        let record = try JSONDecoder().decode(
            BestRecordFile.self, from: Data(contentsOf: URL(fileURLWithPath: run.bestFile)))
        let final = try JSONDecoder().decode(
            RoutingStatistics.self, from: Data(contentsOf: URL(fileURLWithPath: run.validationFile)))
        let scores =
            try MetricsLog.read(run.metricsFile).dropLast().map { try XCTUnwrap($0.validation?.macroF1) } + [
                final.macroF1
            ]
        XCTAssertEqual(scores.count, 8, "validated every epoch")
        let bestEpoch = scores.indices.first { scores[$0] == scores.max() }! + 1
        XCTAssertEqual(record.metric, "macro_f1")
        XCTAssertEqual(record.value, scores.max()!)
        XCTAssertEqual(record.epoch, bestEpoch, "the first epoch reaching the best score: \(scores)")
        XCTAssertEqual(try Checkpoint.read(from: run.bestCheckpoint).epoch, bestEpoch)

        _ = try train(try job(data: data, epochs: 4, extra: extra), folder: "best-resumed")
        _ = try train(try job(data: data, epochs: 8, extra: extra), folder: "best-resumed", resume: true)
        let resumed = try Data(
            contentsOf: URL(fileURLWithPath: RunDirectory(path: directory.file("best-resumed")).bestFile))
        XCTAssertEqual(try JSONDecoder().decode(BestRecordFile.self, from: resumed), record)
    }

    func testResumeReachesBitwiseTheSameWeights() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 12, classes: 3, train: 150, test: 60, spread: 2)
        let straight = try job(data: data, epochs: 6)
        _ = try train(straight, folder: "straight")
        _ = try train(try job(data: data, epochs: 3), folder: "stopped")
        _ = try train(straight, folder: "stopped", resume: true)
        let a = try Checkpoint.read(from: RunDirectory(path: directory.file("straight")).lastCheckpoint)
        let b = try Checkpoint.read(from: RunDirectory(path: directory.file("stopped")).lastCheckpoint)
        XCTAssertEqual(a.epoch, 6)
        XCTAssertEqual(a.globalStep, b.globalStep)
        XCTAssertEqual(a.model, b.model, "parameters and BatchNorm buffers identical to the bit")
        XCTAssertNotNil(a.trainingBuffers, "the final checkpoint holds re-estimated statistics and training's")
        XCTAssertEqual(a.trainingBuffers, b.trainingBuffers, "resuming continued from training's statistics")
        XCTAssertEqual(a.optimizerState, b.optimizerState)
        XCTAssertEqual(a.optimizerStepCount, b.optimizerStepCount)
        let m1 = try MetricsLog.read(RunDirectory(path: directory.file("straight")).metricsFile)
        let m2 = try MetricsLog.read(RunDirectory(path: directory.file("stopped")).metricsFile)
        XCTAssertEqual(m1.map(\.loss), m2.map(\.loss), "metrics.jsonl continues where it stopped, without repeats")
    }

    /// `training.shuffle: blocks` (the default) on one rank: the epoch's piece is the whole split
    /// in block order, shuffled whole; training learns, is the same run to run whatever the
    /// timing of the reads ahead, and resumes bitwise; metrics.jsonl says how long the loop
    /// waited for rows.
    func testBlocksShuffleLearnsRepeatsAndResumes() throws {
        // 300 features: chunks of 55 rows (64 KiB, `DatasetWriter.chunkRows`), so the 1,000
        // training rows are 19 blocks.
        let data = try Fixtures.writeDataset(
            in: directory, features: 300, classes: 3, train: 1000, test: 120, spread: 1)
        let blocks = try job(data: data, epochs: 4, extra: ["training.shuffle=blocks"])
        let stats = try train(blocks, folder: "blocks-a")
        XCTAssertGreaterThan(stats.accuracy, 0.9)
        _ = try train(blocks, folder: "blocks-b")
        _ = try train(try job(data: data, epochs: 2, extra: ["training.shuffle=blocks"]), folder: "blocks-c")
        _ = try train(blocks, folder: "blocks-c", resume: true)
        let a = try Checkpoint.read(from: RunDirectory(path: directory.file("blocks-a")).lastCheckpoint)
        for other in ["blocks-b", "blocks-c"] {
            let b = try Checkpoint.read(from: RunDirectory(path: directory.file(other)).lastCheckpoint)
            XCTAssertEqual(a.model, b.model, other)
        }
        let global = try Checkpoint.read(
            from: RunDirectory(
                path: directory.file(
                    try {
                        _ = try train(
                            try job(data: data, epochs: 4, extra: ["training.shuffle=global"]), folder: "global")
                        return "global"
                    }())
            ).lastCheckpoint)
        XCTAssertNotEqual(a.model, global.model, "blocks mode visits the split in another order")
        let metrics = try MetricsLog.read(RunDirectory(path: directory.file("blocks-a")).metricsFile)
        XCTAssertEqual(metrics.count, 4)
        for m in metrics { XCTAssertGreaterThanOrEqual(try XCTUnwrap(m.dataStallSeconds), 0) }
        XCTAssertGreaterThan(
            try XCTUnwrap(metrics[0].dataStartupSeconds), 0, "the first epoch's rows are read before it starts")
        XCTAssertTrue(
            metrics.dropFirst().allSatisfy { $0.dataStartupSeconds == nil }, "only the first epoch reads up front")
    }

    /// A data file written while training reads it stops training with one line naming it,
    /// before rows of two versions mix (the reads ahead check it every epoch).
    func testADataFileChangedWhileTrainingStopsIt() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 12, classes: 3, train: 96, test: 24)
        for (k, mode) in ["global", "blocks"].enumerated() {
            let trainer = try Trainer(
                job: try job(data: data, epochs: 4, extra: ["training.shuffle=\(mode)"]),
                run: RunDirectory(path: directory.file("changed-\(mode)")), communicator: nil, resume: false,
                progress: ProgressReporter(enabled: false))
            var touched = false
            trainer.afterEachStep = {
                guard !touched else { return }
                touched = true
                // A later modification time: what any write leaves.
                let later = timespec(tv_sec: 2_000_000_000 + k, tv_nsec: 0)
                var times = [later, later]
                XCTAssertEqual(utimensat(AT_FDCWD, data, &times, 0), 0)
            }
            XCTAssertThrowsError(try trainer.run(), mode) { error in
                XCTAssertTrue("\(error)".contains("changed while training read it (written"), "\(error)")
                XCTAssertTrue("\(error)".hasPrefix(data), "\(error)")
            }
        }
    }

    /// The checkpoint of an evaluated epoch is the model evaluated: its BatchNorm statistics
    /// are the re-estimated ones, and restoring it for evaluation reproduces the reported
    /// numbers; evaluating more often never changes what training computes.
    func testTheCheckpointIsTheEvaluatedModel() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 12, classes: 3, train: 150, test: 60, spread: 2)
        let reported = try train(try job(data: data, epochs: 4), folder: "final-only")
        _ = try train(try job(data: data, epochs: 4, extra: ["eval.every_epochs=1"]), folder: "every-epoch")
        let a = try Checkpoint.read(from: RunDirectory(path: directory.file("final-only")).lastCheckpoint)
        let b = try Checkpoint.read(from: RunDirectory(path: directory.file("every-epoch")).lastCheckpoint)
        XCTAssertEqual(a.model, b.model, "evaluating every epoch changes nothing")
        XCTAssertEqual(a.trainingBuffers, b.trainingBuffers)
        let name = "blocks.0.bn.running_mean"
        XCTAssertEqual(a.batchNormStatistics, "re-estimated")
        XCTAssertNotEqual(a.model[name], a.trainingBuffers?[name], "dropout makes re-estimation move the statistics")
        // Epoch 2 of the every-epoch run was evaluated, so its checkpoint holds re-estimated statistics too.
        let second = try Checkpoint.read(from: RunDirectory(path: directory.file("every-epoch")).checkpoint(epoch: 2))
        XCTAssertEqual(second.batchNormStatistics, "re-estimated")
        XCTAssertEqual(
            try Checkpoint.read(from: RunDirectory(path: directory.file("final-only")).checkpoint(epoch: 2))
                .batchNormStatistics, "training")

        // The stored model, evaluated without re-estimating, gives the numbers training reported.
        let reader = try DatasetReader(path: data)
        let network = try a.restoredNetwork(for: reader, dataPath: data, source: "last.h5")
        let evaluation = DistributedEvaluation(network: network, ranks: OneProcess(), batchSize: 64, classGroups: nil)
        let test = try reader.read(split: .test)
        XCTAssertEqual(try evaluation.statistics(test, tau: a.job.eval.tau), reported)
    }

    /// The same job on a data file replaced by one of other samples: refused before any tensor
    /// is copied (a convolution's weights would fit images of any size).
    func testResumeRefusesDataOfAnotherShape() throws {
        let path = directory.file("replaced.h5")
        _ = try Fixtures.writeDataset(in: directory, name: "replaced.h5", features: 12, classes: 3, train: 64, test: 32)
        _ = try train(try job(data: path, epochs: 2), folder: "replaced")
        try FileManager.default.removeItem(atPath: path)
        _ = try Fixtures.writeDataset(in: directory, name: "replaced.h5", features: 10, classes: 3, train: 64, test: 32)
        XCTAssertThrowsError(try train(try job(data: path, epochs: 4), folder: "replaced", resume: true)) { error in
            XCTAssertTrue(
                "\(error)".contains("trained on samples of shape [12] in 3 classes, the data has [10]"), "\(error)")
        }
    }

    func testResumeRefusesAnotherJob() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 12, classes: 3, train: 96, test: 48)
        _ = try train(try job(data: data, epochs: 2), folder: "run")
        XCTAssertThrowsError(
            try train(try job(data: data, epochs: 4, extra: ["optimizer.lr=0.1"]), folder: "run", resume: true)
        ) { error in
            XCTAssertTrue("\(error)".contains("different job (optimizer.lr: 0.005 -> 0.1)"), "\(error)")
        }
        // The same data under another name (same SHA-256) is the same data: the run resumes.
        let moved = directory.file("moved.h5")
        try FileManager.default.copyItem(atPath: data, toPath: moved)
        XCTAssertNoThrow(try train(try job(data: moved, epochs: 3), folder: "run", resume: true))
        XCTAssertThrowsError(try train(try job(data: data, epochs: 4), folder: "empty", resume: true)) { error in
            XCTAssertTrue("\(error)".contains("no checkpoint"), "\(error)")
        }
    }

    func testCheckpointRoundTripAndEvaluationLeavesTheModelUnchanged() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 12, classes: 3, train: 96, test: 48)
        let j = try job(data: data, epochs: 2)
        let trainer = try Trainer(
            job: j, run: RunDirectory(path: directory.file("rt")), communicator: nil, resume: false,
            progress: ProgressReporter(enabled: false))
        _ = try trainer.run()
        let before = trainer.network.store.snapshot()
        let first = try trainer.testStatistics()
        XCTAssertEqual(trainer.network.store.snapshot().parameters, before.parameters)
        XCTAssertEqual(
            trainer.network.store.snapshot().buffers, before.buffers, "BatchNorm re-estimation works on a copy")
        XCTAssertEqual(try trainer.testStatistics(), first, "evaluation is deterministic")

        let saved = Checkpoint(
            job: j, epoch: 2, globalStep: 7, featureShape: [12], classNames: ["a", "b", "c"],
            network: trainer.network, optimizer: trainer.optimizer)
        let path = directory.file("roundtrip.h5")
        try saved.write(to: path)
        let loaded = try Checkpoint.read(from: path)
        XCTAssertEqual(loaded, saved)
        XCTAssertEqual(loaded.model["blocks.0.linear.weight"]?.shape, [32, 12], "PyTorch's [out, in]")
        XCTAssertEqual(loaded.model["blocks.1.bn.running_var"]?.shape, [32])
        XCTAssertEqual(loaded.optimizerState["exp_avg"]?["exits.2.linear.bias"]?.shape, [3])

        let fresh = j.makeNetwork(featureShape: [12], classes: 3)
        try loaded.restore(into: fresh, optimizer: nil, source: path)
        XCTAssertEqual(Array(fresh.store.parameters), before.parameters)
        XCTAssertEqual(Array(fresh.store.buffers), before.buffers)

        let wider = try JobLoader.parse(
            "{}", source: "x", overrides: ["model.hidden=[16, 32, 32]", "model.exits=[1,2,3]"]
        )
        .makeNetwork(featureShape: [12], classes: 3)
        XCTAssertThrowsError(try loaded.restore(into: wider, optimizer: nil, source: path)) { error in
            XCTAssertTrue(
                "\(error)".contains("blocks.0.linear.weight has shape [32, 12], the network needs [16, 12]"), "\(error)"
            )
        }
    }
}

/// best.json as a reader outside the package sees it.
struct BestRecordFile: Codable, Equatable {
    var metric: String
    var value: Double
    var epoch: Int
}
