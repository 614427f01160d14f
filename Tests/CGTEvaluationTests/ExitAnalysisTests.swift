import CGTData
import CGTJob
import CGTModel
import CGTRandom
import XCTest

@testable import CGTEvaluation

/// Exit policies, threshold sweeps and confidence quality on small prediction sets worked out by hand.
final class ExitAnalysisTests: XCTestCase {
    /// Five samples, three exits: (label, predictions, max probability) per sample.
    let handSet = ExitRecords(
        exits: 3, classes: 3,
        labels: [0, 1, 1, 0, 2],
        predictions: [0, 0, 0, /**/ 0, 1, 1, /**/ 0, 1, 1, /**/ 1, 1, 0, /**/ 0, -1, 2],
        maxProbability: [
            0.95, 0.99, 0.99, /**/ 0.92, 0.99, 0.99, /**/ 0.50, 0.90, 0.99, /**/ 0.60, 0.70, 0.80, /**/ 0.10, 0, 0.30,
        ])

    func testPerExitThresholdsAndFallbacks() {
        let paper = handSet.tally(.uniform(0.9, exits: 3))
        XCTAssertEqual(paper.answered, [2, 1, 2])
        XCTAssertEqual(paper.answeredCorrect, [1, 1, 2])
        // A stricter first exit: sample 1 (0.92) moves to exit 2.
        let strict = handSet.tally(ExitPolicy(thresholds: [0.93, 0.9, 0.9]))
        XCTAssertEqual(strict.answered, [1, 2, 2])
        XCTAssertEqual(strict.answeredCorrect, [1, 2, 2])
        // Most confident fallback: sample 3 (0.6, 0.7, 0.8) stays at exit 3, sample 4 goes to exit 3
        // (0.1 vs 0.3; exit 2 declines), and with thresholds of 1 everything goes to its best exit.
        let best = handSet.tally(ExitPolicy(thresholds: [1, 1, 1], fallback: .mostConfident))
        XCTAssertEqual(best.answered, [0, 2, 3], "ties go to the earlier exit: samples 0, 1 at 0.99 pick exit 2")
        // A declining exit never answers, even at threshold 0.
        XCTAssertEqual(handSet.tally(ExitPolicy(thresholds: [0.99, 0, 0])).answered, [0, 4, 1])
    }

    /// samples.csv: one row per sample with the exit the policy picks, its answer, and every exit's columns.
    func testSamplesCSVRoutesEachSampleAsThePolicyDoes() {
        let report = EvaluationReport(
            records: handSet, policy: .uniform(0.9, exits: 3), exitFLOPs: [1, 2, 3],
            fullNetworkFLOPs: 3, classNames: ["a", "b", "c"])
        let rows = report.samplesCSV.split(separator: "\n").map {
            $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        }
        XCTAssertEqual(rows.count, 6)
        XCTAssertEqual(
            Array(rows[0].prefix(9)),
            [
                "sample", "label", "exit", "prediction", "correct",
                "exit1_prediction", "exit1_max_probability", "exit1_entropy_score", "exit1_margin",
            ])
        XCTAssertEqual(rows[0].count, 5 + 3 * 4)
        // (sample, label, exit, prediction, correct) worked out from the hand set at tau 0.9.
        let expected = [
            ["0", "0", "1", "0", "1"], ["1", "1", "1", "0", "0"], ["2", "1", "2", "1", "1"],
            ["3", "0", "3", "0", "1"], ["4", "2", "3", "2", "1"],
        ]
        XCTAssertEqual(rows.dropFirst().map { Array($0.prefix(5)) }, expected)
        XCTAssertEqual(rows[5][9], "-1", "exit 2 declines sample 4")
        XCTAssertEqual(Float(rows[3][6]), 0.50)
        XCTAssertEqual(Double(rows.dropFirst().filter { $0[4] == "1" }.count) / 5, report.statistics.accuracy)
    }

    func testEveryoneLeavesAtTheFirstExitAndAbsentClasses() {
        let records = ExitRecords(
            exits: 2, classes: 4, labels: [0, 0, 1], predictions: [0, 0, 0, 0, 1, 1],
            maxProbability: [1, 1, 1, 1, 1, 1])
        let s = records.tally(.uniform(0.5, exits: 2)).statistics(tau: 0.5, exitFLOPs: [1, 4], fullNetworkFLOPs: 4)
        XCTAssertEqual(s.exitFractions, [1, 0])
        XCTAssertEqual(s.relativeCost, 0.25)
        XCTAssertEqual(s.macroF1, 1, "classes 2 and 3 appear nowhere and do not count")
        XCTAssertEqual(records.perClassExitFractions(.uniform(0.5, exits: 2)), [[1, 0], [1, 0], [0, 0], [0, 0]])
    }

    func testSweepIsMonotoneAndFindsTargets() {
        var generator = SeededGenerator(seed: 3)
        let n = 400
        let exits = 3
        var labels: [Int32] = []
        var predictions: [Int32] = []
        var confidence: [Float] = []
        for _ in 0..<n {
            let label = Int32(generator.next() % 4)
            labels.append(label)
            for e in 0..<exits {
                let c = generator.uniform(0.25, 1)
                confidence.append(c)
                // Deeper and more confident exits are right more often.
                predictions.append(generator.uniform(0, 1) < c * Float(e + 2) / 4 ? label : (label + 1) % 4)
            }
        }
        let records = ExitRecords(
            exits: exits, classes: 4, labels: labels, predictions: predictions, maxProbability: confidence)
        let sweep = ThresholdSweep(
            records: records, thresholds: ThresholdSweep.range("0.3:1:0.05")!, criterion: .maxProbability,
            fallback: .last, exitFLOPs: [10, 20, 30], fullNetworkFLOPs: 30)
        XCTAssertEqual(sweep.points.count, 15)
        for (a, b) in zip(sweep.points, sweep.points.dropFirst()) {
            XCTAssertLessThanOrEqual(a.relativeCost, b.relativeCost, "a higher threshold never makes inference cheaper")
            XCTAssertGreaterThanOrEqual(a.exitFractions[0], b.exitFractions[0])
        }
        XCTAssertEqual(
            sweep.points.last?.exitFractions, [0, 0, 1], "threshold 1 is never reached: the last exit answers all")
        let front = sweep.points.filter(\.paretoOptimal)
        XCTAssertFalse(front.isEmpty)
        for p in front {
            XCTAssertFalse(sweep.points.contains { $0.accuracy > p.accuracy && $0.relativeCost <= p.relativeCost })
        }
        let target = front.map(\.accuracy).sorted()[front.count / 2]
        let cheapest = try! XCTUnwrap(sweep.cheapest(reaching: target))
        XCTAssertGreaterThanOrEqual(cheapest.accuracy, target)
        XCTAssertFalse(sweep.points.contains { $0.accuracy >= target && $0.relativeCost < cheapest.relativeCost })
        let budget = cheapest.relativeCost
        let best = try! XCTUnwrap(sweep.mostAccurate(within: budget))
        XCTAssertGreaterThanOrEqual(best.accuracy, cheapest.accuracy)
        XCTAssertNil(sweep.mostAccurate(within: 0.1))
        XCTAssertEqual(
            sweep.csv.split(separator: "\n").first,
            "threshold,accuracy,macro_f1,relative_cost,pareto_optimal,exit1_fraction,exit2_fraction,exit3_fraction")
        XCTAssertNil(ThresholdSweep.range("0.9:0.5:0.1"))
        XCTAssertEqual(ThresholdSweep.range("0.5:0.99:0.01")?.count, 50)
    }

    func testCalibrationErrorAndAUROCByHand() {
        // Bin 14 of 15 (0.95): half right -> |0.5 - 0.95| * 2/4; bin 8 (0.55): all right -> |1 - 0.55| * 2/4.
        let q = ConfidenceQuality(confidence: [0.95, 0.95, 0.55, 0.55], correct: [true, false, true, true])
        XCTAssertEqual(q.ece, 0.45, accuracy: 1e-6)
        XCTAssertEqual(q.bins.count, 15)
        XCTAssertEqual(q.bins[14].count, 2)
        XCTAssertEqual(q.bins[8].accuracy, 1)
        XCTAssertEqual(
            ConfidenceQuality(confidence: [1, 0], correct: [true, false]).ece, 0, "confidence 1 falls in the last bin")
        // Positives 0.9, 0.7 against negatives 0.8, 0.6: three of four pairs ordered.
        XCTAssertEqual(
            ConfidenceQuality.auroc(score: [0.9, 0.8, 0.7, 0.6], positive: [true, false, true, false])!, 0.75,
            accuracy: 1e-12)
        XCTAssertEqual(
            ConfidenceQuality.auroc(score: [0.5, 0.5, 0.5], positive: [true, false, true])!, 0.5, accuracy: 1e-12,
            "ties count half")
        XCTAssertEqual(ConfidenceQuality.auroc(score: [0.1, 0.9], positive: [true, false])!, 0)
        XCTAssertNil(ConfidenceQuality.auroc(score: [0.1, 0.9], positive: [true, true]))
        let perExit = handSet.confidenceQuality(criterion: .maxProbability)
        XCTAssertEqual(perExit.count, 3)
        // Exit 1 is right only on sample 0 (0.95), the most confident: AUROC 1.
        XCTAssertEqual(perExit[0].auroc!, 1, accuracy: 1e-12)
    }

    func testShardedRecordsJoinToTheWhole() {
        var joined = ExitRecords(exits: 3, classes: 3)
        for shard in [0..<2, 2..<5] {
            let part = ExitRecords(
                exits: 3, classes: 3, labels: Array(handSet.labels[shard]),
                predictions: Array(handSet.predictions[(shard.lowerBound * 3)..<(shard.upperBound * 3)]),
                maxProbability: Array(handSet.maxProbability[(shard.lowerBound * 3)..<(shard.upperBound * 3)]))
            joined.append(serialized: part.serialized)
        }
        XCTAssertEqual(joined, handSet)
    }
}
