import CGTKernels
import CGTTestSupport
import XCTest

@testable import CGTModel

/// End to end: a small early-exit network learns a separable problem with the gated loss.
final class LearningTests: XCTestCase {
    /// Four Gaussian blobs in 6-D: class k is centred at 4 e_k (unit noise). Neighbouring centres
    /// are 5.7 apart, so the Bayes error is about 3 * Phi(-2.83) = 0.7%.
    private func blobs(_ count: Int, seed: UInt64) -> (x: [Float], labels: [Int32]) {
        let labels = Fixtures.labels(count, classes: 4, seed: seed)
        let noise = Fixtures.normals(count * 6, seed: seed + 1)
        var x = noise
        for i in 0..<count { x[i * 6 + Int(labels[i])] += 4 }
        return (x, labels)
    }

    private func makeNetwork() -> (EarlyExitNetwork, ExitObjective) {
        let network = MLPArchitecture(
            inputFeatures: 6, hiddenWidths: [16, 16], exitsAfter: [1, 2], classes: 4,
            batchNorm: true, dropout: 0
        ).build()
        network.initialize(seed: 7)
        network.reserve(maxBatch: 256)
        let objective = ExitObjective(exits: 2, classes: 4)
        objective.reserve(maxBatch: 256)
        return (network, objective)
    }

    /// One training step on samples `range` of the data; returns the objective's statistics.
    @discardableResult
    private func step(
        _ network: EarlyExitNetwork, _ objective: ExitObjective, _ optimizer: Optimizer, learningRate: Float,
        data: (x: [Float], labels: [Int32]), range: Range<Int>, weighting: ExitWeighting, ids: SampleIDs
    ) -> ExitObjective.Statistics {
        let batch = range.count
        let x = Array(data.x[(range.lowerBound * 6)..<(range.upperBound * 6)])
        let labels = Array(data.labels[range])
        let context = ForwardContext(
            mode: .training, sampleIDs: UnsafeBufferPointer(rebasing: ids.buffer[range]), randomKey: 1)
        x.withUnsafeBufferPointer { network.forward($0, batch: batch, context: context) }
        let statistics = labels.withUnsafeBufferPointer {
            objective.lossAndGradients(
                network: network, labels: $0, batch: batch, weighting: weighting, globalBatch: batch)
        }
        x.withUnsafeBufferPointer { network.backward(input: $0, batch: batch) }
        optimizer.step(network.store, learningRate: learningRate)
        return statistics
    }

    /// Accuracy of each exit at inference.
    private func accuracy(_ network: EarlyExitNetwork, data: (x: [Float], labels: [Int32])) -> [Double] {
        let batch = data.labels.count
        data.x.withUnsafeBufferPointer { network.forward($0, batch: batch, context: ForwardContext(mode: .inference)) }
        return (0..<network.exitCount).map { e in
            let logits = network.logits(exit: e, batch: batch)
            let correct = (0..<batch).filter { i in
                let row = (0..<4).map { logits[i * 4 + $0] }
                return row.indices.max { row[$0] < row[$1] }! == Int(data.labels[i])
            }.count
            return Double(correct) / Double(batch)
        }
    }

    func testSoftCGTWithAdamLearnsGaussianBlobs() {
        let train = blobs(256, seed: 1)
        let test = blobs(256, seed: 101)
        let (network, objective) = makeNetwork()
        let adam = Adam(parameterCount: network.store.parameterCount)
        let ids = SampleIDs((0..<256).map(Int64.init))
        let before = accuracy(network, data: test)
        for s in 0..<160 {
            let start = (s % 4) * 64
            step(
                network, objective, adam, learningRate: 1e-2, data: train, range: start..<(start + 64),
                weighting: SoftCGT(tau: 0.9), ids: ids)
        }
        XCTAssertEqual(adam.stepCount, 160)
        let after = accuracy(network, data: test)
        XCTAssertLessThan(before[1], 0.8, "the untrained network should not already solve the problem")
        XCTAssertGreaterThanOrEqual(after[1], 0.97, "last-exit accuracy on held-out blobs")
        XCTAssertGreaterThanOrEqual(after[0], 0.9, "the first exit learns too")
    }

    func testSGDWithMomentumReducesTheLoss() {
        let train = blobs(256, seed: 2)
        let (network, objective) = makeNetwork()
        let sgd = SGD(parameterCount: network.store.parameterCount, momentum: 0.9, weightDecay: 0)
        let ids = SampleIDs((0..<256).map(Int64.init))
        // Mean cross-entropy summed over exits, on the full batch.
        let meanLoss = { (s: ExitObjective.Statistics) in s.loss.reduce(0, +) / 256 }
        let first = meanLoss(
            step(
                network, objective, sgd, learningRate: 0.05, data: train, range: 0..<256, weighting: HardCGT(tau: 0.9),
                ids: ids))
        var last = first
        for _ in 0..<40 {
            last = meanLoss(
                step(
                    network, objective, sgd, learningRate: 0.05, data: train, range: 0..<256,
                    weighting: HardCGT(tau: 0.9), ids: ids))
        }
        XCTAssertGreaterThan(first, 2.0, "two exits of a 4-class problem start near 2 ln 4")
        XCTAssertLessThan(last, 0.5 * first, "loss \(first) -> \(last)")
    }
}
