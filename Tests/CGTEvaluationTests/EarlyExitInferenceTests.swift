import CGTCheckpoint
import CGTData
import CGTJob
import CGTModel
import CGTTestSupport
import XCTest

@testable import CGTEvaluation
@testable import CGTTraining

/// Real early exits give the answers of computing every exit and choosing afterwards.
final class EarlyExitInferenceTests: XCTestCase {
    let directory = TemporaryDirectory("inference")

    private func trainedNetwork(method: [String]) throws -> (EarlyExitNetwork, DatasetSplit, ClassGroups?) {
        let data = try Fixtures.writeDataset(
            in: directory, features: 12, classes: 4, train: 256, test: 203, spread: 1.5)
        let job = try JobLoader.parse(
            "name: inference", source: "test",
            overrides: [
                "data.path=\(data)", "model.hidden=[24, 24, 24]", "model.exits=[1, 2, 3]", "training.epochs=6",
                "training.batch_size=32", "optimizer.lr=0.01",
            ] + method)
        let trainer = try Trainer(
            job: job, run: RunDirectory(path: directory.file(method.joined())), communicator: nil, resume: false,
            progress: ProgressReporter(enabled: false))
        try trainer.run()
        let test = try DatasetReader(path: data).read(split: .test)
        return (trainer.network, test, trainer.classGroups)
    }

    func testEarlyExitsAnswerAsComputingEveryExit() throws {
        for method in [
            ["method.name=softcgt"],
            ["method.name=classynet", "method.weights=[1, 1, 1]", "method.class_groups=[[0], [1, 2]]"],
            // Boosted exits answer with summed logits, which real early exits must carry along.
            [
                "method.name=branchynet", "method.weights=[1, 1, 1]", "method.boosting=true",
                "method.gradient_equilibrium=true", "method.distillation.weight=0.5",
            ],
        ] {
            let (network, test, groups) = try trainedNetwork(method: method)
            let records = Evaluator(network: network, batchSize: 64, classGroups: groups).records(test)
            for criterion in ExitCriterion.allCases {
                for fallback in ExitFallback.allCases {
                    let policy = ExitPolicy(criterion: criterion, thresholds: [0.6, 0.5, 0.5], fallback: fallback)
                    let scores = records.scores(criterion)
                    let inference = EarlyExitInference(network: network, policy: policy, maxBatch: 64)
                    for batch in [1, 7, 64] {
                        var exits = [Int32](repeating: -9, count: test.count)
                        var predictions = exits
                        let x = test.features  // every test sample, in order
                        var first = 0
                        while first < test.count {
                            let count = min(batch, test.count - first)
                            x.withUnsafeBufferPointer { xb in
                                exits.withUnsafeMutableBufferPointer { eb in
                                    predictions.withUnsafeMutableBufferPointer { pb in
                                        let e = UnsafeMutableBufferPointer(rebasing: eb[first..<(first + count)])
                                        let p = UnsafeMutableBufferPointer(rebasing: pb[first..<(first + count)])
                                        inference.run(
                                            UnsafeBufferPointer(rebasing: xb[(first * 12)..<((first + count) * 12)]),
                                            batch: count, exits: e, predictions: p)
                                    }
                                }
                            }
                            first += count
                        }
                        var disagreements = 0
                        for i in 0..<test.count {
                            let range = (i * 3)..<((i + 1) * 3)
                            let expected = policy.route(scores: scores[range], predictions: records.predictions[range])
                            if Int(exits[i]) != expected || predictions[i] != records.predictions[i * 3 + expected] {
                                // Only a score within rounding of a threshold may route differently.
                                let nearThreshold = (0..<3).contains {
                                    abs(scores[i * 3 + $0] - policy.thresholds[$0]) < 1e-5
                                }
                                XCTAssertTrue(
                                    nearThreshold,
                                    "\(method) \(criterion) \(fallback) batch \(batch) sample \(i): exit \(exits[i]) vs \(expected)"
                                )
                                disagreements += 1
                            }
                        }
                        XCTAssertLessThanOrEqual(disagreements, 1)
                    }
                    // Spot check that the policy is not trivial here: several exits answer.
                    XCTAssertGreaterThan(
                        Set(records.tally(policy).answered.enumerated().filter { $0.element > 0 }.map(\.offset)).count,
                        1, "\(method) \(criterion) \(records.tally(policy).answered)")
                }
            }
        }
    }
}
