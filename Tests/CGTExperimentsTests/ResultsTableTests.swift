import CGTCheckpoint
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

    /// A finished run's files; `data` adds the provenance keys eval.json records (file and SHA-256).
    private func writeRun(
        _ folder: String, name: String, method: String, seed: Int, f1: Double, exits: [Double], seconds: Double,
        data: (file: String, sha256: String)? = nil, budgeted: [(cost: Double, flops: Double, accuracy: Double)]? = nil
    ) throws {
        let run = RunDirectory(path: directory.file(folder))
        try run.create()
        var job = Job()
        job.name = name
        let weights = method == "branchynet" ? ", weights: [1, 0.5, 0.25]" : ""
        job.method = try JobLoader.parse("method: {name: \(method)\(weights)}", source: folder).method
        job.training.seed = UInt64(seed)
        try AtomicFile.write(Data(try JobLoader.yaml(job).utf8), to: run.jobFile)
        let statistics = RoutingStatistics(
            tau: 0.9, samples: 10, accuracy: f1 + 0.01, macroPrecision: f1, macroRecall: f1, macroF1: f1,
            weightedPrecision: nil, weightedRecall: nil, weightedF1: nil, exitFractions: exits,
            perExitAccuracy: [0, 0, 0], answeredAccuracy: [nil, nil, nil], relativeCost: 0.5, expectedFLOPs: 1,
            exitFLOPs: [1, 2, 3],
            fullNetworkFLOPs: 3, averageExitDepth: 1, confusion: [])
        var evaluation = try XCTUnwrap(
            try JSONSerialization.jsonObject(with: try JSONEncoder().encode(statistics)) as? [String: Any])
        if let data {
            evaluation["data"] = "/somewhere/\(data.file)"
            evaluation["data_sha256"] = data.sha256
        }
        if let budgeted {
            let curve = BudgetedCurve.meanAccuracy(of: budgeted.map { ($0.cost, $0.accuracy) }, over: 0.2...0.6)
            evaluation["budgeted"] =
                [
                    "criterion": "max_probability", "range": [0.2, 0.6], "area": curve, "fitted_on": "validation",
                    "points": budgeted.enumerated().map { k, p in
                        [
                            "q": Double(k + 1) * 0.5, "thresholds": [0.9, 0.8, 0], "accuracy": p.accuracy,
                            "relative_cost": p.cost, "expected_flops": p.flops, "exit_fractions": [0.5, 0.3, 0.2],
                        ] as [String: Any]
                    },
                ] as [String: Any]
        }
        try AtomicFile.write(try JSONSerialization.data(withJSONObject: evaluation), to: run.evaluationFile)
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

    /// Runs evaluated with `cgt eval --budgeted` get a column with the area's mean ± std over
    /// seeds, and `cgt report` overlays their curves.
    func testBudgetedAreaColumnAndCurves() throws {
        // Seed 0: flat 0.90 over 0.2-0.6; seed 1: 0.80 at 0.2 rising to 0.90 at 0.6 (mean 0.85).
        try writeRun(
            "s0", name: "ip_softcgt", method: "softcgt", seed: 0, f1: 0.9, exits: [0.6, 0.2, 0.2], seconds: 1,
            budgeted: [(0.2, 200, 0.9), (0.6, 600, 0.9)])
        try writeRun(
            "s1", name: "ip_softcgt", method: "softcgt", seed: 1, f1: 0.9, exits: [0.6, 0.2, 0.2], seconds: 1,
            budgeted: [(0.2, 200, 0.8), (0.6, 600, 0.9)])
        try writeRun("b0", name: "ip_branchynet", method: "branchynet", seed: 0, f1: 0.8, exits: [1, 0, 0], seconds: 1)
        let runs = ["s0", "s1", "b0"].map(directory.file)
        let lines = try ResultsTable.load(runs: runs).markdown().split(separator: "\n").map(String.init)
        XCTAssertTrue(lines[0].hasSuffix("| Seeds | Budgeted % (cost 0.20-0.60) |"), lines[0])
        // mean of 90 and 85, sample deviation 3.54
        XCTAssertTrue(lines[2].hasSuffix("| 0, 1 | 87.50 ± 3.54 |"), lines[2])
        XCTAssertTrue(lines[3].hasSuffix("| 0 |  |"), lines[3])
        let report = try ComparisonReport(runs: runs)
        let figure = try XCTUnwrap(report.figures().first { $0.name == "budgeted_curves" })
        // At 400 FLOPs seed 0 has 0.90 and seed 1 0.85: mean 0.875.
        let rows = figure.csv.split(separator: "\n").map { $0.split(separator: ",").map(String.init) }
        let middle = try XCTUnwrap(rows.first { $0.count > 2 && Double($0[1]) == 400 })
        XCTAssertEqual(Double(middle[2])!, 0.875, accuracy: 1e-9)
        XCTAssertFalse(figure.csv.contains("branchynet"), "a group without curves draws none")
    }

    func testUnfinishedRunIsNamed() {
        XCTAssertThrowsError(try ResultsTable.load(runs: [directory.file("missing")])) { error in
            XCTAssertTrue("\(error)".contains("missing/eval.json"), "\(error)")
        }
    }

    let tiny = (file: "tiny.h5", sha256: String(repeating: "a1", count: 32))
    let pines = (file: "indian_pines.h5", sha256: String(repeating: "b2", count: 32))

    /// The issue's table: one job run on synthetic data and on Indian Pines was one row
    /// ("Seeds 0, 0"); by data hash it is two rows, named by the job and their data, with the
    /// data in a column.
    func testOneJobOnDifferentDataIsTwoRows() throws {
        try writeRun(
            "s0", name: "ip_softcgt", method: "softcgt", seed: 0, f1: 0.6, exits: [1, 0, 0], seconds: 1, data: tiny)
        try writeRun(
            "p0", name: "ip_softcgt", method: "softcgt", seed: 0, f1: 0.9, exits: [1, 0, 0], seconds: 1, data: pines)
        try writeRun(
            "p1", name: "ip_softcgt", method: "softcgt", seed: 1, f1: 0.92, exits: [1, 0, 0], seconds: 1, data: pines)
        let table = try ResultsTable.load(runs: ["s0", "p0", "p1"].map(directory.file))
        XCTAssertEqual(table.rows.map(\.seeds), [[0], [0, 1]])
        XCTAssertEqual(table.rows.map(\.data.sha256), [tiny.sha256, pines.sha256])
        XCTAssertEqual(table.labels, ["ip_softcgt on tiny.h5 (a1a1a1a1)", "ip_softcgt on indian_pines.h5 (b2b2b2b2)"])
        let lines = table.markdown().split(separator: "\n").map(String.init)
        XCTAssertTrue(lines[0].hasSuffix("| Seeds | Data |"), lines[0])
        XCTAssertTrue(lines[2].hasPrefix("| ip_softcgt on tiny.h5 (a1a1a1a1) | 60.0 |"), lines[2])
        XCTAssertTrue(lines[3].hasPrefix("| ip_softcgt on indian_pines.h5 (b2b2b2b2) | 91.0 ± 1.4 |"), lines[3])
        XCTAssertTrue(lines[3].hasSuffix("| 0, 1 | indian_pines.h5 (b2b2b2b2) |"), lines[3])
        XCTAssertEqual(lines.count, 4, "no note: every run records its data")
    }

    /// A row is a mean over seeds: the same seed twice (a copied folder, a run given twice) is
    /// refused, naming both folders.
    func testTheSameSeedTwiceInARowIsRefused() throws {
        try writeRun(
            "d0", name: "ip_hardcgt", method: "hardcgt", seed: 3, f1: 0.9, exits: [1, 0, 0], seconds: 1, data: tiny)
        try writeRun(
            "d1", name: "ip_hardcgt", method: "hardcgt", seed: 3, f1: 0.8, exits: [1, 0, 0], seconds: 1, data: tiny)
        XCTAssertThrowsError(try ResultsTable.load(runs: ["d0", "d1"].map(directory.file))) { error in
            XCTAssertEqual(
                "\(error)",
                "\(directory.file("d0")) and \(directory.file("d1")) are both seed 3 of ip_hardcgt on tiny.h5 (a1a1a1a1): a row is a mean over seeds, give each seed once"
            )
        }
        XCTAssertThrowsError(try ResultsTable.load(runs: [directory.file("d0"), directory.file("d0") + "/."])) {
            error in
            XCTAssertTrue("\(error)".contains("given twice"), "\(error)")
        }
        // The same seed on other data is another row, not a duplicate.
        try writeRun(
            "d2", name: "ip_hardcgt", method: "hardcgt", seed: 3, f1: 0.7, exits: [1, 0, 0], seconds: 1, data: pines)
        XCTAssertEqual(try ResultsTable.load(runs: ["d0", "d2"].map(directory.file)).rows.count, 2)
    }

    /// Runs from before eval.json recorded its data group under "unknown", and the table says so.
    func testRunsWithoutADataHashAreGroupedAsUnknown() throws {
        try writeRun("u0", name: "ip_co", method: "co", seed: 0, f1: 0.5, exits: [1, 0, 0], seconds: 1)
        try writeRun("u1", name: "ip_co", method: "co", seed: 1, f1: 0.7, exits: [1, 0, 0], seconds: 1)
        try writeRun("k0", name: "ip_co", method: "co", seed: 0, f1: 0.9, exits: [1, 0, 0], seconds: 1, data: pines)
        let table = try ResultsTable.load(runs: ["u0", "u1", "k0"].map(directory.file))
        XCTAssertEqual(table.rows.map(\.folders.count), [2, 1])
        XCTAssertEqual(table.rows.map(\.data.key), ["unknown", pines.sha256])
        XCTAssertEqual(
            table.labels, ["ip_co on indian_pines.h5 (data unknown)", "ip_co on indian_pines.h5 (b2b2b2b2)"])
        let markdown = table.markdown()
        XCTAssertTrue(
            markdown.hasSuffix(
                "Data unknown: \(directory.file("u0")), \(directory.file("u1")) record no data_sha256 (in eval.json or checkpoints/last.h5: trained before cgt recorded it), so their rows group them by job name alone, as data \"unknown\"."
            ), markdown)
    }
}
