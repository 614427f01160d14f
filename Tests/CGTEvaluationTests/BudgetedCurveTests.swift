import CGTModel
import XCTest

@testable import CGTEvaluation

/// MSDNet's budgeted protocol: proportions, thresholds fitted for them, the area by hand.
final class BudgetedCurveTests: XCTestCase {
    func testProportionsFollowQ() {
        XCTAssertEqual(BudgetedCurve.proportions(q: 1, exits: 4), [0.25, 0.25, 0.25, 0.25])
        let half = BudgetedCurve.proportions(q: 0.5, exits: 3)
        // 0.5, 0.25, 0.125 over 0.875.
        XCTAssertEqual(half[0], 0.5 / 0.875, accuracy: 1e-12)
        XCTAssertEqual(half[2], 0.125 / 0.875, accuracy: 1e-12)
        XCTAssertEqual(BudgetedCurve.proportions(q: 2, exits: 3).reduce(0, +), 1, accuracy: 1e-12)
        XCTAssertEqual(BudgetedCurve.defaultQs.count, 40)
    }

    /// Ten samples, three exits: the 3 most confident at exit 1 leave there, then the 3 most
    /// confident of the rest at exit 2; exit 3 answers the other 4.
    func testThresholdsLetTheProportionsLeave() {
        var predictions: [Int32] = []
        var confidence: [Float] = []
        for i in 0..<10 {
            predictions += [0, i == 9 ? -1 : 0, 0]
            confidence += [Float(i) / 10, Float(10 - i) / 10, 1]
        }
        let records = ExitRecords(
            exits: 3, classes: 2, labels: [Int32](repeating: 0, count: 10), predictions: predictions,
            maxProbability: confidence)
        let thresholds = BudgetedCurve.thresholds(
            on: records, proportions: [0.3, 0.3, 0.4], criterion: .maxProbability)
        // Exit 1: samples 9, 8, 7 (0.9, 0.8, 0.7); exit 2 among 0-6: samples 0, 1, 2 (1.0, 0.9, 0.8).
        XCTAssertEqual(thresholds, [0.7, 0.8, 0])
        XCTAssertEqual(records.tally(ExitPolicy(thresholds: thresholds)).answered, [3, 3, 4])
        // A quota of 0 lets nobody leave; a declining exit takes nobody it declines.
        XCTAssertEqual(
            BudgetedCurve.thresholds(on: records, proportions: [0, 0.5, 0.5], criterion: .maxProbability)[0], .infinity)
    }

    /// The envelope through the Pareto points (0.2, 0.8), (0.5, 0.9), (1.0, 0.92); (0.6, 0.85) is
    /// dominated. Over [0.3, 0.9]: from 0.3 to 0.5 the mean of 0.8667 and 0.9, from 0.5 to 0.9
    /// the mean of 0.9 and 0.916.
    func testAreaIsTheMeanAccuracyOverTheRange() {
        let points = [(0.2, 0.8), (0.5, 0.9), (1.0, 0.92), (0.6, 0.85)].map { (cost: $0.0, accuracy: $0.1) }
        let atLow = 0.8 + 0.1 * (0.1 / 0.3)
        let atHigh = 0.9 + 0.02 * (0.4 / 0.5)
        let expected = ((atLow + 0.9) / 2 * 0.2 + (0.9 + atHigh) / 2 * 0.4) / 0.6
        XCTAssertEqual(BudgetedCurve.meanAccuracy(of: points, over: 0.3...0.9), expected, accuracy: 1e-12)
        // Beyond the curve the envelope is held flat.
        XCTAssertEqual(BudgetedCurve.meanAccuracy(of: points, over: 0.0...0.1), 0.8, accuracy: 1e-12)
    }
}
