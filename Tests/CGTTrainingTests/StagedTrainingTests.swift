import CGTCheckpoint
import CGTData
import CGTJob
import CGTModel
import CGTTestSupport
import Foundation
import XCTest

@testable import CGTEvaluation
@testable import CGTTraining

/// Cascade Optimization, the disjoint and mixed regimes, progressive exit activation and
/// ClassyNet, trained end to end on small synthetic data.
final class StagedTrainingTests: XCTestCase {
    let directory = TemporaryDirectory("staged")

    func job(data: String, epochs: Int, _ extra: [String]) throws -> Job {
        try JobLoader.parse(
            "name: staged", source: "test",
            overrides: [
                "data.path=\(data)", "model.hidden=[16, 16, 16]", "model.exits=[1, 2, 3]", "model.dropout=0.1",
                "training.epochs=\(epochs)", "training.batch_size=32", "training.checkpoint_every=1", "training.seed=5",
                "optimizer.lr=0.01", "optimizer.name=adamw", "optimizer.weight_decay=0.01",
            ] + extra)
    }

    /// Trains and returns the checkpoint after each epoch, the untrained state first.
    func checkpoints(_ job: Job, folder: String) throws -> [Checkpoint] {
        let run = RunDirectory(path: directory.file(folder))
        let trainer = try Trainer(
            job: job, run: run, communicator: nil, resume: false, progress: ProgressReporter(enabled: false))
        let initial = Checkpoint(
            job: job, epoch: 0, globalStep: 0, featureShape: [12], classNames: [], network: trainer.network,
            optimizer: nil)
        try trainer.run()
        return [initial] + (try (1...job.training.epochs).map { try Checkpoint.read(from: run.checkpoint(epoch: $0)) })
    }

    /// The key-path parts ("blocks.0", "exits.2") whose parameters or buffers changed in
    /// training between two checkpoints (the final one's re-estimated statistics aside).
    func changed(_ a: Checkpoint, _ b: Checkpoint) -> Set<String> {
        let (x, y) = (a.trainingState, b.trainingState)
        return Set(
            x.keys.filter { x[$0] != y[$0] }.map {
                $0.split(separator: ".").prefix(2).joined(separator: ".")
            })
    }

    func testPhasesOfEachScheme() throws {
        let data = "unused.h5"
        let co = try job(data: data, epochs: 10, ["method.name=co"]).trainingPhases()
        XCTAssertEqual(co.map(\.epochs), [0..<3, 3..<6, 6..<10], "even split, the remainder to the last stages")
        XCTAssertEqual(
            co.map(\.scope),
            [
                TrainingScope(exitLimit: 1), TrainingScope(exitLimit: 2, frozenBlocks: 1, frozenExits: [0]),
                TrainingScope(exitLimit: 3, frozenBlocks: 2, frozenExits: [0, 1]),
            ])
        XCTAssertEqual(co.map(\.fixedWeights), [[1, 0, 0], [0, 1, 0], [0, 0, 1]])
        let disjoint = try job(data: data, epochs: 10, ["training.regime=disjoint", "training.backbone_epochs=4"])
            .trainingPhases()
        XCTAssertEqual(disjoint.map(\.epochs), [0..<4, 4..<10])
        XCTAssertEqual(
            disjoint.map(\.scope),
            [
                TrainingScope(exitLimit: 3, frozenExits: [0, 1]),
                TrainingScope(exitLimit: 3, frozenBlocks: 3, frozenExits: [2]),
            ])
        XCTAssertEqual(disjoint.map(\.fixedWeights), [[0, 0, 1], nil])
        let mixed = try job(data: data, epochs: 10, ["training.regime=mixed"]).trainingPhases()
        XCTAssertEqual(mixed.map(\.epochs), [0..<5, 5..<10])
        XCTAssertEqual(mixed[1].scope, .everything(exits: 3))
        let progressive = try job(data: data, epochs: 10, ["training.exit_start_epochs=[0, 0, 6]"]).trainingPhases()
        XCTAssertEqual(progressive.map(\.epochs), [0..<6, 6..<10])
        XCTAssertEqual(progressive.map(\.scope.exitLimit), [2, 3])
        XCTAssertEqual(
            progressive.map(\.restartsOptimizer), [true, false], "activation keeps the optimizer and the schedule")
        XCTAssertEqual(try job(data: data, epochs: 10, []).trainingPhases().count, 1)
    }

    func testCascadeOptimizationNeverTouchesFrozenStages() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 12, classes: 3, train: 192, test: 96, spread: 1)
        let states = try checkpoints(try job(data: data, epochs: 3, ["method.name=co"]), folder: "co")
        XCTAssertEqual(changed(states[0], states[1]), ["blocks.0", "exits.0"], "stage 1: block 1 and exit 1 only")
        XCTAssertEqual(
            changed(states[1], states[2]), ["blocks.1", "exits.1"],
            "stage 2: earlier stage frozen (weights and BatchNorm statistics), later not run")
        XCTAssertEqual(changed(states[2], states[3]), ["blocks.2", "exits.2"])
        let metrics = try MetricsLog.read(RunDirectory(path: directory.file("co")).metricsFile)
        XCTAssertEqual(
            metrics.map(\.gateMean), [[1, 0, 0], [0, 1, 0], [0, 0, 1]], "each stage learns from its own exit only")
        XCTAssertEqual(states[2].optimizerStepCount, 6, "each stage starts a fresh optimizer: 6 steps in stage 2")
    }

    func testDisjointAndMixedRegimes() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 12, classes: 3, train: 192, test: 96, spread: 1)
        let disjoint = try checkpoints(
            try job(data: data, epochs: 4, ["training.regime=disjoint", "method.name=hardcgt"]), folder: "disjoint")
        XCTAssertEqual(
            changed(disjoint[0], disjoint[2]), ["blocks.0", "blocks.1", "blocks.2", "exits.2"],
            "backbone and last exit first")
        XCTAssertEqual(
            changed(disjoint[2], disjoint[4]), ["exits.0", "exits.1"], "then the heads on the frozen backbone")
        let mixed = try checkpoints(try job(data: data, epochs: 4, ["training.regime=mixed"]), folder: "mixed")
        XCTAssertEqual(changed(mixed[0], mixed[2]), ["blocks.0", "blocks.1", "blocks.2", "exits.2"])
        XCTAssertEqual(changed(mixed[2], mixed[4]).count, 6, "then everything")
        let result = try XCTUnwrap(
            try? JSONDecoder().decode(
                RoutingStatistics.self,
                from: Data(contentsOf: URL(fileURLWithPath: RunDirectory(path: directory.file("mixed")).evaluationFile))
            ))
        XCTAssertGreaterThan(result.accuracy, 0.8)
    }

    func testProgressiveActivationAndAnnealing() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 12, classes: 3, train: 192, test: 96, spread: 1)
        let states = try checkpoints(
            try job(
                data: data, epochs: 3,
                [
                    "method.name=branchynet", "method.weights=[1, 1, 1]", "training.exit_start_epochs=[0, 0, 2]",
                    "method.anneal={from: [1, 0.5, 0.5], to: [1, 1, 1], epochs: 2}",
                ]), folder: "progressive")
        XCTAssertEqual(
            changed(states[0], states[2]), ["blocks.0", "blocks.1", "exits.0", "exits.1"],
            "exit 3 and its block wait for epoch 3")
        XCTAssertEqual(changed(states[2], states[3]).count, 6)
        let metrics = try MetricsLog.read(RunDirectory(path: directory.file("progressive")).metricsFile)
        XCTAssertEqual(
            metrics.map(\.gateMean), [[1, 0.5, 0], [1, 0.75, 0], [1, 1, 1]], "annealed factors times activation")
        XCTAssertEqual(metrics[0].loss[2], 0, "an inactive exit reports no loss")
    }

    func testClassyNetShallowExitsAnswerOnlyTheirGroups() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 12, classes: 4, train: 256, test: 128, spread: 1)
        let job = try job(
            data: data, epochs: 6,
            [
                "method.name=classynet", "method.weights=[1, 0.6, 0.3]", "method.grouping_epochs=2",
                "method.group_size=1",
            ])
        let run = RunDirectory(path: directory.file("classy"))
        let trainer = try Trainer(
            job: job, run: run, communicator: nil, resume: false, progress: ProgressReporter(enabled: false))
        XCTAssertNil(trainer.classGroups)
        try trainer.run()
        let groups = try XCTUnwrap(trainer.classGroups)
        XCTAssertEqual(groups.groups.map { $0?.count }, [1, 1, nil])
        XCTAssertNotEqual(groups.groups[0], groups.groups[1], "groups do not overlap")
        let stored = try Checkpoint.read(from: run.lastCheckpoint)
        XCTAssertEqual(stored.classGroups, groups, "the exit policy travels with the checkpoint")
        XCTAssertNil(try Checkpoint.read(from: run.checkpoint(epoch: 1)).classGroups, "chosen after epoch 2")
        XCTAssertEqual(stored.model["exits.0.linear.weight"]?.shape, [5, 16], "4 classes and 'other'")

        // Every prediction of a shallow exit is one of its classes or a refusal.
        let reader = try DatasetReader(path: data)
        let test = try reader.read(split: .test)
        let network = job.makeNetwork(featureShape: [12], classes: 4)
        try stored.restore(into: network, optimizer: nil, source: run.lastCheckpoint)
        let objective = ExitObjective(network: network, classGroups: groups)
        network.reserve(maxBatch: test.count)
        objective.reserve(maxBatch: test.count)
        // Every test sample in order: the split's own arrays.
        let (x, y) = (test.features, test.labels)
        x.withUnsafeBufferPointer { network.forward($0, batch: test.count, context: ForwardContext(mode: .inference)) }
        let outputs = y.withUnsafeBufferPointer { objective.predict(network: network, labels: $0, batch: test.count) }
        var refusals = 0
        for e in 0..<2 {
            let own = Set(groups.groups[e]!)
            for i in 0..<test.count {
                let p = Int(outputs.predictions[e * test.count + i])
                XCTAssertTrue(p == -1 || own.contains(p), "exit \(e) predicted \(p)")
                if p == -1 {
                    refusals += 1
                    XCTAssertEqual(outputs.confidence[e * test.count + i], 0, "a refusal never reaches tau")
                }
            }
        }
        XCTAssertGreaterThan(refusals, test.count / 2, "samples of foreign classes are declined")
        let statistics = try JSONDecoder().decode(
            RoutingStatistics.self, from: Data(contentsOf: URL(fileURLWithPath: run.evaluationFile)))
        XCTAssertGreaterThan(statistics.accuracy, 0.8)
    }
}
