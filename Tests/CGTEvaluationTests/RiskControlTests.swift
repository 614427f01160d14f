import CGTRandom
import XCTest

@testable import CGTEvaluation

/// `RiskControl`: the gap risk, Hoeffding's p-value and fixed-sequence testing by hand, and the
/// guarantee held on random halvings of records whose true risk is known.
final class RiskControlTests: XCTestCase {
    /// Four samples, two exits: (label, predictions, max probability).
    let records = ExitRecords(
        exits: 2, classes: 2, labels: [0, 1, 1, 0],
        predictions: [0, 0, /**/ 0, 1, /**/ 1, 0, /**/ 1, 1],
        maxProbability: [0.9, 0.99, /**/ 0.8, 0.99, /**/ 0.7, 0.99, /**/ 0.95, 0.99])

    func testGapRiskCountsWhatTheFullNetworkGotRightAndTheExitsLost() {
        // At 0.85: sample 0 leaves at exit 1 (right), 1 and 2 go on (exit 2: right, wrong),
        // 3 leaves at exit 1 (wrong, and the full network is wrong too): no sample lost.
        XCTAssertEqual(RiskControl.risk(of: .uniform(0.85, exits: 2), on: records), 0)
        // At 0.75: sample 1 leaves at exit 1 with 0 (full network: 1): one of four lost.
        XCTAssertEqual(RiskControl.risk(of: .uniform(0.75, exits: 2), on: records), 0.25)
        // At 0.5: sample 2 leaves at exit 1 too, right where the full network is wrong.
        XCTAssertEqual(RiskControl.risk(of: .uniform(0.5, exits: 2), on: records), 0.25)
    }

    func testHoeffdingAndTheFixedSequence() {
        let control = RiskControl(epsilon: 0.1, delta: 0.1)
        XCTAssertEqual(control.pValue(risk: 0.05, samples: 100), exp(-0.5), accuracy: 1e-12)
        XCTAssertEqual(control.pValue(risk: 0.1, samples: 100), 1)
        // 1,000 samples: exit 1 is right on the first 900 (confidence 0.9) and wrong on the
        // rest (confidence 0.6 on 50 of them, 0.3 on 50); the full network is always right.
        var labels: [Int32] = []
        var predictions: [Int32] = []
        var confidence: [Float] = []
        for i in 0..<1000 {
            labels.append(0)
            predictions += [i < 900 ? 0 : 1, 0]
            confidence += [i < 900 ? 0.9 : (i < 950 ? 0.6 : 0.3), 0.99]
        }
        let set = ExitRecords(
            exits: 2, classes: 2, labels: labels, predictions: predictions, maxProbability: confidence)
        // From 0.95 down: risk 0 until 0.6 (risk 0.05: p = exp(-2000 * 0.0025) = 0.0067 <= 0.1),
        // then 0.3 (risk 0.1: p = 1) stops the sequence; 0.2 below it is never tested.
        let choice = control.choose(
            on: set, thresholds: [0.2, 0.3, 0.6, 0.95], criterion: .maxProbability, fallback: .last)
        XCTAssertEqual(choice.threshold.map { Float($0) }, 0.6)
        XCTAssertEqual(choice.tests.map { Float($0.threshold) }, [0.95, 0.6, 0.3])
        XCTAssertEqual(choice.tests[1].pValue, exp(-5), accuracy: 1e-12)
        // Too few samples certify nothing: even a risk of 0 needs n >= ln(1 / delta) / (2 epsilon^2)
        // = 116 samples; 100 give p = exp(-2) = 0.135 at 0.95.
        let few = set.subset(Array(0..<90) + Array(900..<905) + Array(950..<955))
        let none = control.choose(on: few, thresholds: [0.3, 0.6, 0.95], criterion: .maxProbability, fallback: .last)
        XCTAssertNil(none.threshold)
        XCTAssertEqual(none.tests.count, 1)
        XCTAssertEqual(none.tests[0].pValue, exp(-2), accuracy: 1e-12)
    }

    /// Records whose exit 1 is wrong with probability growing as its confidence falls: on
    /// random halvings the risk of the certified threshold on the other half stays within
    /// epsilon at least 1 - delta of the time, where picking by the calibration risk alone
    /// (no p-value) fails far more often.
    func testTheGuaranteeHoldsOnRandomHalvings() {
        var generator = SeededGenerator(seed: 11, stream: 1)
        var labels: [Int32] = []
        var predictions: [Int32] = []
        var confidence: [Float] = []
        for _ in 0..<4000 {
            let c = Float(generator.uniform(0.3, 1))
            let wrong = Float(generator.uniform(0, 1)) > c
            labels.append(0)
            predictions += [wrong ? 1 : 0, 0]
            confidence += [c, 1]
        }
        let set = ExitRecords(
            exits: 2, classes: 2, labels: labels, predictions: predictions, maxProbability: confidence)
        let control = RiskControl(epsilon: 0.05, delta: 0.2)
        let taus = stride(from: Float(0.99), through: 0.3, by: -0.005).map { $0 }
        let risks = control.resplitRisks(
            of: set, thresholds: taus, criterion: .maxProbability, fallback: .last, resplits: 60, seed: 3)
        let held = risks.filter { $0.map { $0 <= 0.05 } ?? true }.count
        XCTAssertGreaterThanOrEqual(held, 48, "\(risks)")
        XCTAssertGreaterThan(risks.compactMap { $0 }.count, 54, "a threshold is certified on most halvings")
        // Without the test: the lowest threshold whose calibration risk is within epsilon.
        let naive = RiskControl(epsilon: 0.05, delta: 0.999)
        let naiveRisks = naive.resplitRisks(
            of: set, thresholds: taus, criterion: .maxProbability, fallback: .last, resplits: 60, seed: 3)
        XCTAssertLessThan(naiveRisks.filter { ($0 ?? 0) <= 0.05 }.count, 48, "\(naiveRisks)")
    }
}
