import CGTKernels

/// The gated multi-exit loss (Eq. 2): L = (1/N) sum_i sum_e lambda_e(i) CE_e(i).
///
/// N is the global batch size (all ranks together), so that summing the gradients of the
/// ranks gives the gradient of the global batch's loss. `evaluate` computes the softmax,
/// the gates, the statistics and d L / d logits for every exit of the last forward pass.
public final class ExitObjective {
    public let exits: Int
    public let classes: Int
    private var capacity = 0
    private var probabilities: [UnsafeMutableBufferPointer<Float>] = []
    private var losses = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    private var confidence = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    private var trueClass = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    private var predictions = UnsafeMutableBufferPointer<Int32>(start: nil, count: 0)
    private var gates = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    private var scaledGates = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)

    public init(exits: Int, classes: Int) {
        self.exits = exits
        self.classes = classes
    }

    deinit { release() }

    private func release() {
        probabilities.forEach { $0.deallocate() }
        losses.deallocate(); confidence.deallocate(); trueClass.deallocate()
        predictions.deallocate(); gates.deallocate(); scaledGates.deallocate()
    }

    public func reserve(maxBatch: Int) {
        guard maxBatch > capacity else { return }
        release()
        capacity = maxBatch
        probabilities = (0..<exits).map { _ in .allocate(capacity: maxBatch * classes) }
        losses = .allocate(capacity: exits * maxBatch)
        confidence = .allocate(capacity: exits * maxBatch)
        trueClass = .allocate(capacity: exits * maxBatch)
        predictions = .allocate(capacity: exits * maxBatch)
        gates = .allocate(capacity: exits * maxBatch)
        scaledGates = .allocate(capacity: maxBatch)
    }

    /// Sums over the local batch, one entry per exit; summed over ranks they describe the global batch.
    public struct Statistics: Equatable {
        /// sum_i CE_e(i): the unweighted loss of each exit.
        public var loss: [Double]
        /// sum_i lambda_e(i) CE_e(i).
        public var weightedLoss: [Double]
        /// sum_i lambda_e(i): how much each exit learned from.
        public var gate: [Double]
        /// samples each exit classifies correctly.
        public var correct: [Double]

        public init(exits: Int) {
            loss = Array(repeating: 0, count: exits)
            weightedLoss = loss; gate = loss; correct = loss
        }

        /// All sums in one array, for one all-reduce.
        public var flattened: [Double] { loss + weightedLoss + gate + correct }

        public init(flattened values: [Double]) {
            let e = values.count / 4
            loss = Array(values[0..<e]); weightedLoss = Array(values[e..<(2 * e)])
            gate = Array(values[(2 * e)..<(3 * e)]); correct = Array(values[(3 * e)..<(4 * e)])
        }

        public static func += (a: inout Statistics, b: Statistics) {
            for e in a.loss.indices {
                a.loss[e] += b.loss[e]
                a.weightedLoss[e] += b.weightedLoss[e]
                a.gate[e] += b.gate[e]
                a.correct[e] += b.correct[e]
            }
        }
    }

    /// Computes the loss of the last forward pass of `network` and writes every exit's logit gradient.
    /// - Parameters:
    ///   - globalBatch: N of Eq. 2, the number of samples in the step over all ranks.
    ///   - exitScale: multiplies exit e's weights (0 switches an exit's loss off); nil means all 1.
    @discardableResult
    public func evaluate(
        network: EarlyExitNetwork, labels: UnsafeBufferPointer<Int32>, batch: Int, weighting: ExitWeighting,
        globalBatch: Int, exitScale: [Float]? = nil
    ) -> Statistics {
        precondition(batch <= capacity, "objective reserved for \(capacity) samples, got \(batch)")
        precondition(labels.count >= batch, "\(labels.count) labels for a batch of \(batch)")
        let outputs = predict(network: network, labels: labels, batch: batch)
        let w = gates.mutablePrefix(count: exits * batch)
        weighting.weights(for: outputs, into: w)
        var statistics = Statistics(exits: exits)
        let inverseN = 1 / Float(globalBatch)
        for e in 0..<exits {
            let scale = exitScale?[e] ?? 1
            var lossSum = 0.0, weightedSum = 0.0, gateSum = 0.0, correct = 0.0
            for i in 0..<batch {
                let k = e * batch + i
                let lambda = w[k] * scale
                w[k] = lambda
                lossSum += Double(losses[k])
                weightedSum += Double(lambda * losses[k])
                gateSum += Double(lambda)
                if predictions[k] == labels[i] { correct += 1 }
                scaledGates[i] = lambda * inverseN
            }
            statistics.loss[e] = lossSum
            statistics.weightedLoss[e] = weightedSum
            statistics.gate[e] = gateSum
            statistics.correct[e] = correct
            SoftmaxCrossEntropy.backward(
                probabilities: UnsafeBufferPointer(probabilities[e]), labels: labels,
                weights: UnsafeBufferPointer(scaledGates), rows: batch, classes: classes,
                logitGradient: network.logitGradient(exit: e, batch: batch))
        }
        return statistics
    }

    /// Softmax, confidence and prediction of every exit for the last forward pass.
    public func predict(network: EarlyExitNetwork, labels: UnsafeBufferPointer<Int32>, batch: Int) -> ExitPredictions {
        for e in 0..<exits {
            let range = (e * batch)..<((e + 1) * batch)
            SoftmaxCrossEntropy.forward(
                logits: network.logits(exit: e, batch: batch), labels: labels, rows: batch, classes: classes,
                probabilities: probabilities[e],
                losses: UnsafeMutableBufferPointer(rebasing: losses[range]),
                confidence: UnsafeMutableBufferPointer(rebasing: confidence[range]),
                predictions: UnsafeMutableBufferPointer(rebasing: predictions[range]))
            for i in 0..<batch { trueClass[e * batch + i] = probabilities[e][i * classes + Int(labels[i])] }
        }
        return ExitPredictions(
            confidence: UnsafeBufferPointer(rebasing: confidence[0..<(exits * batch)]),
            predictions: UnsafeBufferPointer(rebasing: predictions[0..<(exits * batch)]),
            trueClassProbability: UnsafeBufferPointer(rebasing: trueClass[0..<(exits * batch)]),
            labels: labels, exits: exits, batch: batch)
    }

    /// The gates of the last `evaluate`, exit-major, scaled by `exitScale`.
    public func lastGates(batch: Int) -> UnsafeBufferPointer<Float> { gates.prefix(count: exits * batch) }

    /// The probabilities of exit e from the last pass, `[batch, classes]`.
    public func probabilities(exit e: Int, batch: Int) -> UnsafeBufferPointer<Float> {
        probabilities[e].prefix(count: batch * classes)
    }
}
