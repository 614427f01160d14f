import CGTExperiments
import CGTJob
import CGTTestSupport
import Foundation
import XCTest

/// Grid files: domains, constraints, random draws, errors naming the key.
final class GridFileTests: XCTestCase {
    let directory = TemporaryDirectory("grid")

    private func grid(_ text: String) throws -> GridFile {
        try directory.write("name: base\nmethod: {name: branchynet, weights: [1.0, 0.6, 0.3]}\n", to: "base.yaml")
        try directory.write("base: base.yaml\n" + text, to: "grid.yaml")
        return try GridFile.load(path: directory.file("grid.yaml"))
    }

    func testConstraintsKeepTheOrderedPoints() throws {
        let file = try grid(
            """
            parameters:
              method.weights[1]: {values: [0.8, 0.6, 0.4, 0.2]}
              method.weights[2]: {values: [0.6, 0.4, 0.2, 0.1]}
            constraints: ["1.0 > method.weights[1] > method.weights[2]"]
            """)
        let pairs = try file.trials().map { $0.assignments.map(\.value) }
        var expected: [[String]] = []
        for a in ["0.8", "0.6", "0.4", "0.2"] {
            for b in ["0.6", "0.4", "0.2", "0.1"] where Double(a)! > Double(b)! { expected.append([a, b]) }
        }
        XCTAssertEqual(pairs, expected)
        XCTAssertEqual(pairs.count, 10)
        let jobs = try file.jobs()
        XCTAssertEqual(jobs[4].1.method.weights, [1.0, 0.6, 0.4], "the override sets one list element")
        XCTAssertEqual(jobs[4].1.name, "base/trial-004")
    }

    func testListValuedParameterAndDomains() throws {
        let file = try grid(
            """
            parameters:
              method.weights: {values: [[1.0, 0.5, 0.25], [1.0, 1.0, 1.0], [0.2, 0.5, 1.0]]}
              optimizer.lr: {log: {start: 0.0001, stop: 0.01, count: 3}}
              method.tau: {linear: {start: 0.8, stop: 0.9, step: 0.05}}
            constraints: ["method.weights[0] >= method.weights[1] >= method.weights[2]"]
            """)
        let trials = try file.trials()
        XCTAssertEqual(trials.count, 2 * 3 * 3)
        XCTAssertEqual(Set(trials.map { $0.assignments[1].value }), ["0.0001", "0.001", "0.01"])
        XCTAssertEqual(Set(trials.map { $0.assignments[2].value }), ["0.8", "0.85", "0.9"])
        XCTAssertEqual(Set(trials.map { $0.assignments[0].value }), ["[1.0, 0.5, 0.25]", "[1.0, 1.0, 1.0]"])
        XCTAssertEqual(try file.jobs()[0].1.method.weights, [1.0, 0.5, 0.25])
    }

    func testRandomSearchIsSeededAndConstrained() throws {
        let text = """
            method: random
            count: 12
            seed: 4
            parameters:
              method.weights[1]: {linear: {start: 0.0, stop: 1.0, step: 0.1}}
              method.weights[2]: {linear: {start: 0.0, stop: 1.0, step: 0.1}}
            constraints: ["method.weights[1] > method.weights[2]"]
            """
        let a = try grid(text).trials()
        let b = try grid(text).trials()
        XCTAssertEqual(a, b)
        XCTAssertEqual(a.count, 12)
        for trial in a {
            XCTAssertGreaterThan(Double(trial.assignments[0].value)!, Double(trial.assignments[1].value)!)
        }
    }

    func testErrorsNameTheKey() throws {
        func assertError(_ text: String, key: String, file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertThrowsError(try grid(text).jobs(), file: file, line: line) { error in
                XCTAssertEqual((error as? JobError)?.key, key, "\(error)", file: file, line: line)
            }
        }
        assertError("parameters: {}", key: "parameters")
        assertError("paramters: {optimizer.lr: {values: [1]}}", key: "paramters")
        assertError("parameters: {optimizer.lr: {range: [1, 2]}}", key: "parameters.optimizer.lr.range")
        assertError("method: random\nparameters: {optimizer.lr: {values: [0.1]}}", key: "count")
        assertError(
            "parameters: {optimizer.lr: {values: [0.1]}}\nconstraints: [\"optimizer.lr > momentum\"]",
            key: "constraints")
        assertError("parameters: {optimizer.lr: {values: [-1]}}", key: "optimizer.lr")
        assertError("metric: speed\nparameters: {optimizer.lr: {values: [0.1]}}", key: "metric")
        let lr = "\nparameters: {optimizer.lr: {values: [0.1]}}"
        assertError("asha: {eta: 3}" + lr, key: "asha")
        assertError("method: asha\nasha: {eta: 1}" + lr, key: "asha.eta")
        assertError("method: asha\nasha: {rungs: [10, 5]}" + lr, key: "asha.rungs")
        assertError("method: asha\nasha: {rungs: [0, 5]}" + lr, key: "asha.rungs")
        assertError("method: asha\nasha: {rungs: [5], min_epochs: 2}" + lr, key: "asha.rungs")
        assertError("method: asha\nasha: {grace: 2}" + lr, key: "asha.grace")
    }

    /// `method: asha` lists the combinations (or draws `count` at random) and carries its rungs.
    func testSuccessiveHalvingSection() throws {
        let listed = try grid(
            "method: asha\nasha: {rungs: [2, 6], eta: 2}\nparameters: {optimizer.lr: {values: [0.1, 0.2, 0.3]}}")
        XCTAssertEqual(try listed.trials().count, 3)
        XCTAssertEqual(listed.halving, SuccessiveHalving(rungs: [2, 6], eta: 2))
        XCTAssertEqual(listed.halving?.rungs(forEpochs: 6), [2], "a rung at the last epoch is the final evaluation")
        let drawn = try grid(
            "method: asha\ncount: 5\nseed: 1\nparameters: {optimizer.lr: {linear: {start: 0.1, stop: 0.9, step: 0.1}}}")
        XCTAssertEqual(try drawn.trials().count, 5)
        XCTAssertEqual(drawn.halving, SuccessiveHalving(minEpochs: 1, eta: 3))
        XCTAssertNil(try grid("parameters: {optimizer.lr: {values: [0.1]}}").halving)
    }

    /// The rungs and the cutoff by hand: NumPy's `percentile(v, 100 * (1 - 1/eta))`.
    func testSuccessiveHalvingCutoffs() {
        XCTAssertEqual(SuccessiveHalving(minEpochs: 4, eta: 3).rungs(forEpochs: 100), [4, 12, 36])
        XCTAssertEqual(SuccessiveHalving(minEpochs: 1, eta: 2).rungs(forEpochs: 9), [1, 2, 4, 8])
        XCTAssertEqual(SuccessiveHalving(rungs: [5, 50], eta: 3).rungs(forEpochs: 20), [5])
        let halving = SuccessiveHalving(eta: 3)
        XCTAssertNil(halving.cutoff(recorded: [], metric: .macroF1))
        XCTAssertTrue(halving.continues(0.01, recorded: [], metric: .macroF1), "the first at a rung goes on")
        // [0.2, 0.4, 0.6, 0.8]: position 2/3 * 3 = 2 -> 0.6; for cost, position 1/3 * 3 = 1 -> 0.4.
        let recorded = [0.8, 0.2, 0.6, 0.4]
        XCTAssertEqual(halving.cutoff(recorded: recorded, metric: .macroF1)!, 0.6, accuracy: 1e-12)
        XCTAssertEqual(halving.cutoff(recorded: recorded, metric: .relativeCost)!, 0.4, accuracy: 1e-12)
        // [0.1, 0.5]: position 2/3 -> 0.1 + 0.4 * 2/3.
        XCTAssertEqual(halving.cutoff(recorded: [0.5, 0.1], metric: .accuracy)!, 0.1 + 0.4 * 2 / 3, accuracy: 1e-12)
        XCTAssertTrue(halving.continues(0.6, recorded: recorded, metric: .macroF1), "a tie with the cutoff goes on")
        XCTAssertFalse(halving.continues(0.59, recorded: recorded, metric: .macroF1))
        XCTAssertTrue(halving.continues(0.4, recorded: recorded, metric: .relativeCost))
        XCTAssertFalse(halving.continues(0.41, recorded: recorded, metric: .relativeCost))
        XCTAssertFalse(halving.continues(.nan, recorded: recorded, metric: .macroF1))
        // eta 2 keeps the upper half: the median.
        XCTAssertEqual(SuccessiveHalving(eta: 2).cutoff(recorded: [1, 2, 3], metric: .accuracy)!, 2, accuracy: 1e-12)
    }
}
