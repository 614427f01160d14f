import CGTKernels
import CGTRandom
import CGTTestSupport
import XCTest

@testable import CGTModel

/// The whole-network gradient check of the image networks (the CNN and the ResNet): finite
/// differences of (1/N) sum_e lambda_e sum_i CE_e(i) against the backward pass, leaving out the
/// steps that cross a kink (a ReLU's sign, a max pool's window) between their two evaluations.
enum ImageNetworkGradientCheck {
    /// Sets every BatchNorm's gamma in [0.6, 1.4] and beta in [-0.3, 0.3] (away from 1 and 0),
    /// the BatchNorms being the slots `isBatchNorm` names.
    static func perturbBatchNorm(_ network: EarlyExitNetwork, isBatchNorm: (String) -> Bool) {
        var generator = SeededGenerator(seed: 105)
        for slot in network.store.parameterSlots where isBatchNorm(slot.name) {
            let values = network.store.parameter(slot)
            for k in values.indices {
                values[k] = slot.name.hasSuffix("weight") ? generator.uniform(0.6, 1.4) : generator.uniform(-0.3, 0.3)
            }
        }
    }

    /// The kinks at `x`, from the network's blocks run layer by layer: each max pool's window
    /// choices and the sign of every output `rectifies` says passed a ReLU, plus what `inner`
    /// reads from a layer after its forward pass (a residual block's inner ReLU).
    static func kinkPattern(
        _ network: EarlyExitNetwork, _ x: [Float], batch: Int, rectifies: (Layer) -> Bool,
        inner: (Layer) -> [Int] = { _ in [] }
    ) -> [Int] {
        var pattern: [Int] = []
        var values = x
        let context = ForwardContext(mode: .training)
        for block in network.blocks {
            for layer in block.layers {
                if let pool = layer as? MaxPool2D { pattern += poolWindows(pool, values, batch: batch) }
                var output = [Float](repeating: .nan, count: batch * layer.outputCount)
                values.withUnsafeBufferPointer { input in
                    output.withUnsafeMutableBufferPointer {
                        layer.forward(input, into: $0, batch: batch, context: context)
                    }
                }
                pattern += inner(layer)
                if rectifies(layer) { pattern += output.map { $0 > 0 ? 1 : 0 } }
                values = output
            }
        }
        return pattern
    }

    /// Which of the four inputs of every 2x2 window `pool` takes at `values`.
    static func poolWindows(_ pool: MaxPool2D, _ values: [Float], batch: Int) -> [Int] {
        let (c, h, w) = (pool.inputShape[0], pool.inputShape[1], pool.inputShape[2])
        var windows: [Int] = []
        for n in 0..<batch {
            for channel in 0..<c {
                for oy in 0..<(h / 2) {
                    for ox in 0..<(w / 2) {
                        let window = [(0, 0), (0, 1), (1, 0), (1, 1)].map { dy, dx in
                            values[
                                n * c * h * w
                                    + pool.layout.offset(
                                        channel: channel, y: 2 * oy + dy, x: 2 * ox + dx, channels: c, height: h,
                                        width: w)]
                        }
                        windows.append(
                            window.indices.max { window[$0] < window[$1] || (window[$0] == window[$1] && $0 > $1) }!)
                    }
                }
            }
        }
        return windows
    }

    /// Fails unless the backward pass of `network` (reserved for `batch`) matches finite
    /// differences of the weighted cross-entropy with `lambdas` on seeded inputs, as a whole and
    /// tensor by tensor for the slots `checksSlot` accepts (the others, such as convolution
    /// biases that BatchNorm cancels, only in the whole).
    /// - Parameter step: between two errors: larger steps cross more kinks, smaller ones drown
    ///   in the Float32 rounding of the forward pass.
    static func assertMatches(
        _ network: EarlyExitNetwork, batch: Int, classes: Int, lambdas: [Float], step: Float = 2e-3,
        kinkPattern: ([Float]) -> [Int], checksSlot: (String) -> Bool, name: String,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        let exits = network.exitCount
        let objective = ExitObjective(exits: exits, classes: classes)
        objective.reserve(maxBatch: batch)
        let input = Fixtures.normals(batch * network.inputCount, seed: 21)
        let labels = Fixtures.labels(batch, classes: classes, seed: 22)
        let context = ForwardContext(mode: .training)

        // (1/N) sum_e lambda_e sum_i CE_e(i), with CE in Double from the network's logits.
        func loss() -> Double {
            input.withUnsafeBufferPointer { network.forward($0, batch: batch, context: context) }
            var total = 0.0
            for e in 0..<exits {
                let z = Array(network.logits(exit: e, batch: batch))
                for i in 0..<batch {
                    total +=
                        Double(lambdas[e])
                        * referenceCrossEntropy(z[(i * classes)..<((i + 1) * classes)], label: Int(labels[i]))
                }
            }
            return total / Double(batch)
        }

        let base = kinkPattern(input)
        var kinks = Set<Int>()
        var evaluations = 0
        let numeric = FiniteDifference.gradient(of: network.store.parameters, step: step) {
            if kinkPattern(input) != base { kinks.insert(evaluations / 2) }
            evaluations += 1
            return loss()
        }
        input.withUnsafeBufferPointer { network.forward($0, batch: batch, context: context) }
        _ = labels.withUnsafeBufferPointer {
            objective.lossAndGradients(
                network: network, labels: $0, batch: batch, weighting: FixedExitWeights(lambdas), globalBatch: batch)
        }
        input.withUnsafeBufferPointer { network.backward(input: $0, batch: batch) }
        let analytic = Array(network.store.gradients)

        let count = network.store.parameterCount
        XCTAssertLessThan(
            kinks.count, count / 8, "too many steps cross a ReLU or max-pool kink to judge the gradient", file: file,
            line: line)
        let smooth = (0..<count).filter { !kinks.contains($0) }
        assertGradientMatches(
            smooth.map { analytic[$0] }, smooth.map { numeric[$0] }, "\(name) gradient", file: file, line: line)
        // Each tensor separately, so that a small head cannot hide behind a large block.
        for slot in network.store.parameterSlots where checksSlot(slot.name) {
            let entries = (slot.offset..<(slot.offset + slot.count)).filter { !kinks.contains($0) }
            assertGradientMatches(
                entries.map { analytic[$0] }, entries.map { numeric[$0] }, relativeFloor: 3e-2, slot.name, file: file,
                line: line)
        }
    }
}
