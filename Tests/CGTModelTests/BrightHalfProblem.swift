import CGTTestSupport
import XCTest

@testable import CGTModel

/// A separable image problem the image networks must learn: 8x8 images, bright in the top half
/// (class 0) or the bottom half (class 1), with a random brightness in [0.5, 1.5] and Gaussian
/// noise of 0.3.
enum BrightHalfProblem {
    static func images(_ count: Int, seed: UInt64) -> (x: [Float], labels: [Int32]) {
        let labels = Fixtures.labels(count, classes: 2, seed: seed)
        let noise = Fixtures.normals(count * 64, seed: seed + 1, scale: 0.3)
        let brightness = Fixtures.uniforms(count, seed: seed + 2, 0.5, 1.5)
        var x = noise
        for i in 0..<count {
            let rows = labels[i] == 0 ? 0..<4 : 4..<8
            for row in rows { for column in 0..<8 { x[i * 64 + row * 8 + column] += brightness[i] } }
        }
        return (x, labels)
    }

    /// Trains `network` (two exits, initialised) with SoftCGT and Adam for 120 steps of 32 of 256
    /// training images, and fails unless both exits then classify held-out images (which the
    /// untrained network does not) at 95 % at least. Returns the summed exit losses of every step.
    @discardableResult
    static func assertLearns(_ network: EarlyExitNetwork, file: StaticString = #filePath, line: UInt = #line)
        -> [Double]
    {
        let train = images(256, seed: 1)
        let test = images(256, seed: 101)
        network.reserve(maxBatch: 256)
        let objective = ExitObjective(exits: 2, classes: 2)
        objective.reserve(maxBatch: 256)
        let adam = Adam(parameterCount: network.store.parameterCount)
        let context = ForwardContext(mode: .training)

        func accuracy() -> [Double] {
            test.x.withUnsafeBufferPointer {
                network.forward($0, batch: 256, context: ForwardContext(mode: .inference))
            }
            return (0..<2).map { e in
                let logits = network.logits(exit: e, batch: 256)
                let correct = (0..<256).filter { i in (logits[2 * i + 1] > logits[2 * i] ? 1 : 0) == test.labels[i] }
                    .count
                return Double(correct) / 256
            }
        }

        let before = accuracy()
        var losses: [Double] = []
        for step in 0..<120 {
            let start = (step % 8) * 32
            let x = Array(train.x[(start * 64)..<((start + 32) * 64)])
            let labels = Array(train.labels[start..<(start + 32)])
            x.withUnsafeBufferPointer { network.forward($0, batch: 32, context: context) }
            let loss = labels.withUnsafeBufferPointer {
                objective.lossAndGradients(
                    network: network, labels: $0, batch: 32, weighting: SoftCGT(tau: 0.9), globalBatch: 32)
            }
            losses.append(loss.loss.reduce(0, +))  // summed over the exits and the batch
            x.withUnsafeBufferPointer { network.backward(input: $0, batch: 32) }
            adam.step(network.store, learningRate: 1e-2)
        }
        let after = accuracy()
        XCTAssertLessThan(
            before[1], 0.9, "the untrained network should not already solve the problem", file: file, line: line)
        XCTAssertGreaterThanOrEqual(after[1], 0.95, "last-exit accuracy on held-out images", file: file, line: line)
        XCTAssertGreaterThanOrEqual(after[0], 0.95, "the first exit learns too", file: file, line: line)
        return losses
    }
}
