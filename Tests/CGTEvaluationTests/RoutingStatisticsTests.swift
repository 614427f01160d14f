import Foundation
import XCTest

@testable import CGTEvaluation

/// Routing at a threshold, and the metrics derived from it, on samples worked out by hand.
final class RoutingStatisticsTests: XCTestCase {
    func testRoutingAndMetricsByHand() {
        var tally = RoutingTally(exits: 3, classes: 2)
        // (label, predictions per exit, confidence per exit)
        tally.add(label: 0, predictions: [0, 0, 0], confidence: [0.95, 0.99, 0.99], tau: 0.9)  // exit 1, right
        tally.add(label: 1, predictions: [0, 1, 1], confidence: [0.92, 0.99, 0.99], tau: 0.9)  // exit 1, wrong
        tally.add(label: 1, predictions: [0, 1, 1], confidence: [0.50, 0.90, 0.99], tau: 0.9)  // exit 2 (>= tau), right
        tally.add(label: 0, predictions: [1, 1, 0], confidence: [0.60, 0.70, 0.80], tau: 0.9)  // none fires: exit 3, right
        tally.add(label: 1, predictions: [0, 0, 0], confidence: [0.10, 0.20, 0.30], tau: 0.9)  // none fires: exit 3, wrong
        XCTAssertEqual(tally.answered, [2, 1, 2])
        XCTAssertEqual(tally.answeredCorrect, [1, 1, 1])
        // exit 1 is right on sample 1; exit 2 on samples 1-3; exit 3 on samples 1-4.
        XCTAssertEqual(tally.exitCorrect, [1, 3, 4])
        XCTAssertEqual(tally.confusion, [[2, 0], [2, 1]])

        let s = tally.statistics(tau: 0.9, exitFLOPs: [10, 30, 60], fullNetworkFLOPs: 50)
        XCTAssertEqual(s.samples, 5)
        XCTAssertEqual(s.accuracy, 3.0 / 5, accuracy: 1e-12)
        XCTAssertEqual(s.exitFractions, [0.4, 0.2, 0.4])
        XCTAssertEqual(s.perExitAccuracy, [0.2, 0.6, 0.8])
        XCTAssertEqual(s.answeredAccuracy[0]!, 0.5, accuracy: 1e-12)
        XCTAssertEqual(s.answeredAccuracy[1]!, 1.0, accuracy: 1e-12)
        // expected FLOPs = 0.4*10 + 0.2*30 + 0.4*60 = 34; relative to 50.
        XCTAssertEqual(s.expectedFLOPs, 34, accuracy: 1e-9)
        XCTAssertEqual(s.relativeCost, 0.68, accuracy: 1e-12)
        XCTAssertEqual(s.averageExitDepth, 0.4 * 1 + 0.2 * 2 + 0.4 * 3, accuracy: 1e-12)
        // class 0: TP 2, predicted 4, actual 2 -> P 0.5, R 1, F1 2/3
        // class 1: TP 1, predicted 1, actual 3 -> P 1, R 1/3, F1 0.5
        XCTAssertEqual(s.macroPrecision, 0.75, accuracy: 1e-12)
        XCTAssertEqual(s.macroRecall, (1 + 1.0 / 3) / 2, accuracy: 1e-12)
        XCTAssertEqual(s.macroF1, (2.0 / 3 + 0.5) / 2, accuracy: 1e-12)
        // weighted by support (2 and 3 samples)
        XCTAssertEqual(s.weightedPrecision!, 4.0 / 5, accuracy: 1e-12)  // (0.5 * 2 + 1 * 3) / 5
        XCTAssertEqual(s.weightedRecall!, 3.0 / 5, accuracy: 1e-12)  // (1 * 2 + 1/3 * 3) / 5
        XCTAssertEqual(s.weightedF1!, (4.0 / 3 + 1.5) / 5, accuracy: 1e-12)  // (2/3 * 2 + 0.5 * 3) / 5
    }

    func testTalliesOfShardsAddUp() {
        var a = RoutingTally(exits: 2, classes: 3)
        var b = a
        var whole = a
        let samples: [(Int, [Int], [Float])] = [
            (0, [0, 0], [0.95, 0.9]), (2, [1, 2], [0.2, 0.8]), (1, [1, 1], [0.91, 0.1]),
        ]
        for (i, s) in samples.enumerated() {
            whole.add(label: s.0, predictions: s.1, confidence: s.2, tau: 0.9)
            if i % 2 == 0 {
                a.add(label: s.0, predictions: s.1, confidence: s.2, tau: 0.9)
            } else {
                b.add(label: s.0, predictions: s.1, confidence: s.2, tau: 0.9)
            }
        }
        let sum = zip(a.flattened, b.flattened).map { $0 + $1 }
        XCTAssertEqual(RoutingTally(exits: 2, classes: 3, flattened: sum), whole)
    }

    func testEvalJSONKeys() throws {
        var tally = RoutingTally(exits: 2, classes: 2)
        tally.add(label: 0, predictions: [0, 0], confidence: [0.95, 0.9], tau: 0.9)
        let data = try JSONEncoder().encode(tally.statistics(tau: 0.9, exitFLOPs: [1, 2], fullNetworkFLOPs: 2))
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        for key in [
            "accuracy", "macro_f1", "macro_precision", "macro_recall", "exit_fractions", "per_exit_accuracy",
            "relative_cost", "tau",
        ] {
            XCTAssertNotNil(object[key], key)
        }
    }
}
