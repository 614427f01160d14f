import CGTKernels
import CGTModel
import Foundation

/// Inference that stops computing a sample once an exit answers it: what a deployed early-exit
/// model does. A batch runs block by block; after each exit the samples that leave are dropped
/// and the rest are packed together, so deeper blocks work only on the samples still there.
///
/// Inference-mode layers treat samples independently (BatchNorm uses running statistics), so
/// the answers are those of computing every exit and choosing afterwards.
public final class EarlyExitInference {
    public let network: EarlyExitNetwork
    public let policy: ExitPolicy
    private let packed: UnsafeMutableBufferPointer<Float>
    /// With boosted exits: each remaining sample's sum of the heads' logits so far, packed as `remaining`.
    private let ensemble: UnsafeMutableBufferPointer<Float>
    private var remaining: [Int] = []
    private var best: [(score: Float, exit: Int, prediction: Int32)] = []
    private var probabilities: [Float] = []

    public init(network: EarlyExitNetwork, policy: ExitPolicy, maxBatch: Int) {
        precondition(
            policy.thresholds.count == network.exitCount,
            "\(policy.thresholds.count) thresholds for \(network.exitCount) exits")
        self.network = network
        self.policy = policy
        network.reserve(maxBatch: maxBatch)
        packed = .allocate(capacity: maxBatch * (network.blocks.map(\.outputCount).max() ?? 0))
        ensemble = .allocate(capacity: network.exitCombination == .boosted ? maxBatch * network.classes : 0)
        remaining.reserveCapacity(maxBatch)
        best = Array(repeating: (0, 0, 0), count: maxBatch)
        probabilities = Array(repeating: 0, count: (network.exitOutputs.max() ?? 0))
    }

    deinit {
        packed.deallocate()
        ensemble.deallocate()
    }

    /// Answers `batch` samples: for each, the exit that answered and its prediction.
    /// - Parameter fullNetwork: run every block and only the last head for every sample (the
    ///   cost without early exits), for comparison.
    public func run(
        _ input: UnsafeBufferPointer<Float>, batch: Int, exits: UnsafeMutableBufferPointer<Int32>,
        predictions: UnsafeMutableBufferPointer<Int32>, fullNetwork: Bool = false
    ) {
        let context = ForwardContext(mode: .inference)
        remaining.removeAll(keepingCapacity: true)
        remaining.append(contentsOf: 0..<batch)
        for i in 0..<batch { best[i] = (-1, network.exitCount - 1, -1) }
        var x = input
        var nextExit = 0
        let last = network.exitCount - 1
        for (b, block) in network.blocks.enumerated() {
            let n = remaining.count
            block.forward(x, batch: n, context: context)
            let output = block.output(batch: n)
            var leaving = [Bool](repeating: false, count: n)
            while nextExit <= last && network.exitBlocks[nextExit] == b {
                let e = nextExit
                nextExit += 1
                let boosted = network.exitCombination == .boosted
                if fullNetwork && e < last && !boosted { continue }
                let head = network.exits[e]
                head.forward(output, batch: n, context: context)
                var logits = head.output(batch: n)
                if boosted {
                    // F_e = F_(e-1) + f_e, row by row for the samples still here.
                    let sums = UnsafeMutableBufferPointer(rebasing: ensemble[0..<(n * network.classes)])
                    if e == 0 { _ = sums.update(from: logits) } else { Elementwise.add(logits, to: sums) }
                    logits = UnsafeBufferPointer(sums)
                    if fullNetwork && e < last { continue }
                }
                let outputs = network.exitOutputs[e]
                for r in 0..<n where !leaving[r] {
                    let (score, prediction) = judge(
                        logits[(r * outputs)..<((r + 1) * outputs)], classes: network.classes)
                    let sample = remaining[r]
                    if prediction >= 0 && score > best[sample].score { best[sample] = (score, e, prediction) }
                    let fires = policy.fires(exit: e, score: score, prediction: prediction)
                    if fires || e == last {
                        leaving[r] = true
                        let answer =
                            fires || policy.fallback == .last
                            ? (e, prediction) : (best[sample].exit, best[sample].prediction)
                        exits[sample] = Int32(answer.0)
                        predictions[sample] = answer.1
                    }
                }
            }
            // Pack the samples that stay, for the next block.
            var kept = 0
            let width = block.outputCount
            let classes = network.classes
            for r in 0..<n where !leaving[r] {
                (packed.baseAddress! + kept * width).update(from: output.baseAddress! + r * width, count: width)
                if network.exitCombination == .boosted {
                    (ensemble.baseAddress! + kept * classes).update(
                        from: ensemble.baseAddress! + r * classes, count: classes)
                }
                remaining[kept] = remaining[r]
                kept += 1
            }
            remaining.removeLast(n - kept)
            if remaining.isEmpty { break }
            x = UnsafeBufferPointer(rebasing: UnsafeBufferPointer(packed)[0..<(kept * width)])
        }
    }

    /// The policy's score and the prediction (-1 for "other") of one row of logits.
    private func judge(_ logits: Slice<UnsafeBufferPointer<Float>>, classes: Int) -> (Float, Int32) {
        var top = -Float.infinity
        var argmax = 0
        for (k, z) in logits.enumerated() where z > top {
            top = z
            argmax = k
        }
        var total: Float = 0
        for (k, z) in logits.enumerated() {
            let p = Foundation.exp(z - top)
            probabilities[k] = p
            total += p
        }
        let prediction = argmax >= classes ? Int32(-1) : Int32(argmax)
        let count = logits.count
        for k in 0..<count { probabilities[k] /= total }
        return (
            ConfidenceScores(probabilities: probabilities[0..<count], classes: classes)[policy.criterion], prediction
        )
    }
}
