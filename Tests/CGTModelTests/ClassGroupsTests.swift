import CGTKernels
import CGTTestSupport
import Foundation
import XCTest

@testable import CGTModel

/// ClassyNet's groups: the grouping rule, the "other" targets, declining exits.
final class ClassGroupsTests: XCTestCase {
    func testGroupingRuleTakesTheBestRecalledFreeClasses() {
        let recall: [[Double]] = [
            [0.9, 0.2, 0.8, 0.8, 0.1],  // exit 1: class 0, then 2 and 3 tie -> 2 (lower index)
            [0.99, 0.7, 0.95, 0.1, 0.6],  // exit 2: 0 and 2 are taken -> 1, then 4
            [1, 1, 1, 1, 1],
        ]
        let groups = ClassGroups.choose(recall: recall, groupSize: 2)
        XCTAssertEqual(groups.groups, [[0, 2], [1, 4], nil])
        XCTAssertEqual(groups.target(2, exit: 0), 2)
        XCTAssertEqual(groups.target(3, exit: 0), 5, "outside the group: 'other' is index classes")
        XCTAssertEqual(groups.target(3, exit: 2), 3, "the last exit keeps every label")
        XCTAssertEqual(
            ClassGroups.choose(recall: recall, groupSize: 4).groups, [[0, 2, 3, 1], [4], nil].map { $0?.sorted() })
    }

    /// A shallow head with an "other" output learns "other" for foreign classes and declines
    /// to answer when it predicts it; the loss gradient is softmax minus the one-hot target.
    func testObjectiveMapsForeignClassesToOther() {
        let classes = 3
        let batch = 4
        var architecture = MLPArchitecture(
            inputFeatures: 5, hiddenWidths: [6, 6], exitsAfter: [1, 2], classes: classes, batchNorm: false, dropout: 0)
        architecture.otherOutput = true
        let network = architecture.build()
        XCTAssertEqual(network.exitOutputs, [4, 3])
        network.initialize(seed: 9)
        network.reserve(maxBatch: batch)
        let groups = ClassGroups(classes: classes, groups: [[1], nil])
        let objective = ExitObjective(network: network, classGroups: groups)
        objective.reserve(maxBatch: batch)
        let x = Fixtures.normals(batch * 5, seed: 4)
        let y: [Int32] = [0, 1, 2, 1]
        x.withUnsafeBufferPointer { network.forward($0, batch: batch, context: ForwardContext(mode: .inference)) }
        let gradients = y.withUnsafeBufferPointer { labels -> [[Float]] in
            objective.lossAndGradients(
                network: network, labels: labels, batch: batch, weighting: FixedExitWeights([1, 1]), globalBatch: batch)
            return (0..<2).map { Array(network.logitGradient(exit: $0, batch: batch)) }
        }
        let p0 = referenceSoftmax(Array(network.logits(exit: 0, batch: batch)), classes: 4)
        let targets = [3, 1, 3, 1]  // classes 0 and 2 are 'other' (index 3) at exit 0
        for i in 0..<batch {
            for c in 0..<4 {
                let expected = (p0[i][c] - (c == targets[i] ? 1 : 0)) / Double(batch)
                XCTAssertEqual(Double(gradients[0][i * 4 + c]), expected, accuracy: 1e-6, "sample \(i) output \(c)")
            }
        }
        let outputs = y.withUnsafeBufferPointer { objective.predict(network: network, labels: $0, batch: batch) }
        for i in 0..<batch {
            let top = argmax(p0[i])
            XCTAssertEqual(outputs.predictions[i], top == 3 ? -1 : Int32(top), "exit 0 sample \(i)")
            XCTAssertEqual(Double(outputs.confidence[i]), top == 3 ? 0 : p0[i][top], accuracy: 1e-6)
        }
    }
}
