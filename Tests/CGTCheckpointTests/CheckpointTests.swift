import CGTCheckpoint
import CGTJob
import CGTModel
import CGTTestSupport
import Foundation
import XCTest

/// The checkpoint file: every part of a training state written and read back equal, and a
/// file that does not hold what it claims refused with its place named.
final class CheckpointTests: XCTestCase {
    let directory = TemporaryDirectory("checkpoint")

    /// An l2w job on 3 exits of an MLP over 6 features and 3 classes.
    func l2wJob() throws -> Job {
        try JobLoader.parse(
            "name: l2w", source: "test",
            overrides: [
                "model.hidden=[8, 8, 8]", "model.exits=[1, 2, 3]", "model.batchnorm=true", "method.name=l2w",
                "method.l2w.hidden=4",
            ])
    }

    /// A state with every optional part: a partial epoch, and L2W's network, Adam state and meta batch.
    func fullState(_ job: Job) -> Checkpoint {
        let network = job.makeNetwork(featureShape: [6], classes: 3)
        network.initialize(seed: 5)
        let optimizer = job.makeOptimizer(parameterCount: network.store.parameterCount)
        for (k, (_, buffer)) in optimizer.stateBuffers.enumerated() {
            _ = buffer.update(fromContentsOf: Fixtures.uniforms(buffer.count, seed: UInt64(k + 1)))
        }
        optimizer.stepCount = 12
        var checkpoint = Checkpoint(
            job: job, epoch: 2, globalStep: 12, featureShape: [6], classNames: ["a", "b", "c"], network: network,
            optimizer: optimizer, dataSHA256: String(repeating: "ab", count: 32))
        var statistics = ExitObjective.Statistics(exits: 3)
        statistics.loss = [1.5, 1.25, 1]
        statistics.correct = [3, 4, 5]
        checkpoint.partialEpoch = PartialEpoch(
            step: 3, ranks: 2, statistics: statistics, samples: 48, learningRate: 0.001)
        guard case .l2w(_, let settings) = job.method.choice else { fatalError("an l2w job") }
        let weights = job.makeWeightNetwork(settings)
        weights.optimizer.stepCount = 4
        let batch = MetaBatch(
            features: Fixtures.uniforms(5 * 6, seed: 9), labels: [0, 1, 2, 1, 0], sampleIDs: [10, 11, 12, 40, 41],
            rankRows: [3, 2], globalCount: 5, randomKey: 0xFEDC_BA98_7654_3210)
        checkpoint.l2w = L2WState(weights: weights, steps: 11, metaBatch: batch)
        return checkpoint
    }

    func testEveryPartOfATrainingStateReadsBackEqual() throws {
        let saved = fullState(try l2wJob())
        let path = directory.file("full.h5")
        try saved.write(to: path)
        let loaded = try Checkpoint.read(from: path)
        XCTAssertEqual(loaded, saved)
        XCTAssertEqual(loaded.stepInEpoch, 3)
        XCTAssertEqual(loaded.l2w?.metaBatch?.randomKey, 0xFEDC_BA98_7654_3210, "all 64 bits of the dropout key")
        XCTAssertEqual(loaded.l2w?.parameters["l2w.0.linear.weight"]?.shape, [4, 3], "PyTorch's [out, in]")
    }

    func testTheMetaBatchIsSplitByRank() {
        let batch = MetaBatch(
            features: [], labels: [0, 1, 2, 1, 0], sampleIDs: [], rankRows: [3, 2], globalCount: 5, randomKey: 0)
        XCTAssertEqual(batch.rows(ofRank: 0, of: 2), 0..<3, "as many ranks as stored it: each its own rows")
        XCTAssertEqual(batch.rows(ofRank: 1, of: 2), 3..<5)
        XCTAssertEqual((0..<3).map { batch.rows(ofRank: $0, of: 3) }, [0..<1, 1..<3, 3..<5], "else an even share")
    }

    func testAMetaBatchOfOtherRowsIsRefused() throws {
        var state = fullState(try l2wJob())
        state.l2w?.metaBatch?.rankRows = [3, 3]
        let path = directory.file("rows.h5")
        try state.write(to: path)
        XCTAssertThrowsError(try Checkpoint.read(from: path)) { error in
            XCTAssertTrue("\(error)".contains("rows.h5"), "\(error)")
            XCTAssertTrue("\(error)".contains("/l2w/meta_batch is not one batch"), "\(error)")
        }
    }

    func testAMetaBatchLabelOfNoClassIsRefused() throws {
        var state = fullState(try l2wJob())
        state.l2w?.metaBatch?.labels[4] = 7
        let path = directory.file("label.h5")
        try state.write(to: path)
        XCTAssertThrowsError(try Checkpoint.read(from: path)) { error in
            XCTAssertTrue(
                "\(error)".contains("/l2w/meta_batch/labels holds label 7, not one of the 3 classes"), "\(error)")
        }
    }

    func testL2WStateOfAnotherMethodIsRefused() throws {
        var state = fullState(try l2wJob())
        state.job = try JobLoader.parse(
            "name: soft", source: "test",
            overrides: ["model.hidden=[8, 8, 8]", "model.exits=[1, 2, 3]", "model.batchnorm=true"])
        let path = directory.file("other.h5")
        try state.write(to: path)
        XCTAssertThrowsError(try Checkpoint.read(from: path)) { error in
            XCTAssertTrue("\(error)".contains("the job's method is not l2w"), "\(error)")
        }
    }

    func testAPartialEpochOfOtherExitsIsRefused() throws {
        var state = fullState(try l2wJob())
        state.partialEpoch?.statistics = ExitObjective.Statistics(exits: 2)
        let path = directory.file("partial.h5")
        try state.write(to: path)
        XCTAssertThrowsError(try Checkpoint.read(from: path)) { error in
            XCTAssertTrue("\(error)".contains("epoch_partial is not one epoch's statistics"), "\(error)")
        }
    }

    func testNotACheckpoint() throws {
        let data = try Fixtures.writeDataset(in: directory)
        XCTAssertThrowsError(try Checkpoint.read(from: data)) { error in
            XCTAssertTrue("\(error)".contains("not a cgt checkpoint"), "\(error)")
        }
        XCTAssertThrowsError(try Checkpoint.read(from: directory.file("absent.h5"))) { error in
            XCTAssertTrue("\(error)".contains("absent.h5"), "\(error)")
        }
    }
}

/// The run folder names its files, finds the checkpoint to resume from, and keeps metrics lines.
final class RunDirectoryTests: XCTestCase {
    let directory = TemporaryDirectory("run-directory")

    func testACheckpointBelongsToTheRunAboveItsCheckpointsFolder() {
        let run = RunDirectory(path: directory.file("run"))
        XCTAssertEqual(RunDirectory(containing: run.lastCheckpoint).path, run.path)
        XCTAssertEqual(RunDirectory(containing: directory.file("loose/model.h5")).path, directory.file("loose"))
        XCTAssertEqual(run.evaluation.reportFile, "\(run.path)/eval/eval.json")
        XCTAssertEqual(run.checkpoint(epoch: 7), "\(run.path)/checkpoints/epoch-0007.h5")
        XCTAssertEqual(
            GridFolder(path: directory.file("grid")).trial("trial-001").path, directory.file("grid/trial-001"))
    }

    /// `--resume` takes the newest whole checkpoint: a stop mid-epoch 3 is newer than epoch 2's
    /// file, and a file that is not a checkpoint (a kill during its write) is passed over.
    func testTheNewestCheckpointIsTheOneToResume() throws {
        let job = try JobLoader.parse("name: x", source: "test", overrides: ["model.hidden=[4]", "model.exits=[1]"])
        let network = job.makeNetwork(featureShape: [3], classes: 2)
        let run = RunDirectory(path: directory.file("newest"))
        try run.create()
        func write(epoch: Int, to path: String) throws {
            try Checkpoint(
                job: job, epoch: epoch, globalStep: epoch * 4, featureShape: [3], classNames: ["a", "b"],
                network: network, optimizer: nil
            ).write(to: path)
        }
        try write(epoch: 1, to: run.checkpoint(epoch: 1))
        try write(epoch: 2, to: run.checkpoint(epoch: 2))
        XCTAssertEqual(run.newestCheckpoint, run.checkpoint(epoch: 2))
        try write(epoch: 2, to: run.interruptedCheckpoint)
        XCTAssertEqual(run.newestCheckpoint, run.interruptedCheckpoint, "stopped in epoch 3, after epoch 2's file")
        try Data("cut short".utf8).write(to: URL(fileURLWithPath: run.checkpoint(epoch: 3)))
        XCTAssertEqual(run.newestCheckpoint, run.interruptedCheckpoint, "epoch 3's file is no checkpoint")
        try write(epoch: 3, to: run.checkpoint(epoch: 3))
        XCTAssertEqual(run.newestCheckpoint, run.checkpoint(epoch: 3))
    }

    struct Line: EpochRecord, Equatable {
        var epoch: Int
        var loss: Double
    }

    func testTheMetricsLogKeepsTheEpochsResumedFromAndDropsALineCutShort() throws {
        let path = directory.file("metrics.jsonl")
        let log = EpochLog<Line>(path: path)
        for epoch in 1...3 { try log.append(Line(epoch: epoch, loss: 1 / Double(epoch))) }
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data("{\"epoch\": 4, \"lo".utf8))
        try handle.close()
        var warnings: [String] = []
        XCTAssertEqual(try EpochLog<Line>.read(path) { warnings.append($0) }.map(\.epoch), [1, 2, 3])
        XCTAssertEqual(warnings.count, 1)
        XCTAssertTrue(warnings[0].contains("line 4 is cut short"), warnings[0])
        try log.truncate(afterEpoch: 2)
        XCTAssertEqual(try EpochLog<Line>.read(path), [Line(epoch: 1, loss: 1), Line(epoch: 2, loss: 0.5)])
    }
}
