import CGTData
import CGTExperiments
import CGTFiles
import CGTJob
import CGTTestSupport
import Foundation
import XCTest

@testable import CGTEvaluation
@testable import CGTTraining

/// `cgt table`: rows per job name, mean ± sample standard deviation over seeds.
final class ResultsTableTests: XCTestCase {
    let directory = TemporaryDirectory("table")

    private func writeRun(
        _ folder: String, name: String, method: String, seed: Int, f1: Double, exits: [Double], seconds: Double
    ) throws {
        let run = RunDirectory(path: directory.file(folder))
        try run.create()
        var job = Job()
        job.name = name
        job.method.name = TrainingMethod(rawValue: method)!
        if method == "branchynet" { job.method.weights = [1, 0.5, 0.25] }
        job.training.seed = UInt64(seed)
        try AtomicFile.write(Data(try JobLoader.yaml(job).utf8), to: run.jobFile)
        let statistics = RoutingStatistics(
            tau: 0.9, samples: 10, accuracy: f1 + 0.01, macroPrecision: f1, macroRecall: f1, macroF1: f1,
            weightedPrecision: nil, weightedRecall: nil, weightedF1: nil, exitFractions: exits,
            perExitAccuracy: [0, 0, 0], answeredAccuracy: [nil, nil, nil], relativeCost: 0.5, expectedFLOPs: 1,
            exitFLOPs: [1, 2, 3],
            fullNetworkFLOPs: 3, averageExitDepth: 1, confusion: [])
        try AtomicFile.write(try JSONEncoder().encode(statistics), to: run.evaluationFile)
        let metrics = EpochMetrics(
            epoch: 1, globalStep: 1, learningRate: 0.1, loss: [1], weightedLoss: [1], gateMean: [1], trainAccuracy: [1],
            samples: 1, seconds: seconds, samplesPerSecond: 1, evaluation: nil)
        try MetricsLog(path: run.metricsFile).append(metrics)
    }

    func testRowsAggregateSeeds() throws {
        try writeRun(
            "a0", name: "ip_softcgt", method: "softcgt", seed: 0, f1: 0.90, exits: [0.6, 0.2, 0.2], seconds: 10)
        try writeRun(
            "b0", name: "ip_branchynet", method: "branchynet", seed: 0, f1: 0.80, exits: [0.5, 0.25, 0.25], seconds: 7)
        try writeRun(
            "a1", name: "ip_softcgt", method: "softcgt", seed: 1, f1: 0.94, exits: [0.7, 0.1, 0.2], seconds: 14)
        let table = try ResultsTable.load(runs: ["a0", "b0", "a1"].map(directory.file))
        XCTAssertEqual(table.rows.map(\.name), ["ip_softcgt", "ip_branchynet"])
        XCTAssertEqual(table.rows[0].seeds, [0, 1])
        let lines = table.markdown().split(separator: "\n").map(String.init)
        XCTAssertEqual(
            lines[0],
            "| Model | F1 % | Precision % | Recall % | #Exit1 % | #Exit2 % | #Exit3 % | Accuracy % | Relative cost | Train time (s) | Seeds |"
        )
        // mean 92, sample deviation sqrt(((90-92)^2 + (94-92)^2) / 1) = 2.83
        XCTAssertEqual(
            lines[2],
            "| softcgt | 92.0 ± 2.8 | 92.0 ± 2.8 | 92.0 ± 2.8 | 65.0 ± 7.1 | 15.0 ± 7.1 | 20.0 ± 0.0 | 93.0 ± 2.8 | 0.500 ± 0.000 | 12 ± 3 | 0, 1 |"
        )
        XCTAssertEqual(lines[3], "| branchynet | 80.0 | 80.0 | 80.0 | 50.0 | 25.0 | 25.0 | 81.0 | 0.500 | 7 | 0 |")
    }

    func testUnfinishedRunIsNamed() {
        XCTAssertThrowsError(try ResultsTable.load(runs: [directory.file("missing")])) { error in
            XCTAssertTrue("\(error)".contains("missing/eval.json"), "\(error)")
        }
    }
}
