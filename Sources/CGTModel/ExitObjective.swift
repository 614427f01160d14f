import CGTKernels

/// The gated multi-exit loss (Eq. 2): L = (1/N) sum_i sum_e lambda_e(i) CE_e(i).
///
/// N is the global batch size (all ranks together), so that summing the gradients of the
/// ranks gives the gradient of the global batch's loss. `lossAndGradients` computes the softmax,
/// the gates, the statistics and d L / d logits for every exit of the last forward pass.
/// With `distillation`, L gains (alpha / N) sum_i sum_{e < last} T^2 KL(q_last(i) || p_e(i)).
public final class ExitObjective {
    public let exits: Int
    public let classes: Int
    /// Outputs of each exit's head (`classes`, or `classes + 1` with an "other" output).
    public let outputs: [Int]
    /// ClassyNet's groups: shallow exits learn "other" for classes outside their group and
    /// never answer with it. nil: every exit learns every class.
    public var classGroups: ClassGroups?
    private var capacity = 0
    // Per-sample values of the last pass, exit-major (`exits * batch`), grown by `reserve`.
    private let targetCache = IndexCache()
    private var probabilityCaches: [LayerCache] = []
    private let lossCache = LayerCache()
    private let confidenceCache = LayerCache()
    private let trueClassCache = LayerCache()
    private let predictionCache = IndexCache()
    private let gateCache = LayerCache()
    private let scaledGateCache = LayerCache()
    private var targets: UnsafeMutableBufferPointer<Int32> { targetCache.storage }
    private var losses: UnsafeMutableBufferPointer<Float> { lossCache.storage }
    private var confidence: UnsafeMutableBufferPointer<Float> { confidenceCache.storage }
    private var trueClass: UnsafeMutableBufferPointer<Float> { trueClassCache.storage }
    private var predictions: UnsafeMutableBufferPointer<Int32> { predictionCache.storage }
    private var gates: UnsafeMutableBufferPointer<Float> { gateCache.storage }
    private var scaledGates: UnsafeMutableBufferPointer<Float> { scaledGateCache.storage }

    /// Label smoothing eps of every exit's cross-entropy (`training.label_smoothing`); 0 is plain CE.
    public var labelSmoothing: Float = 0

    /// Self-distillation (BYOT, Zhang et al., ICCV 2019; Phuong and Lampert, ICCV 2019): every
    /// exit but the deepest also learns the deepest exit's prediction softened at a temperature.
    public struct SelfDistillation: Equatable, Sendable {
        /// alpha: the distillation term's weight next to the gated cross-entropy.
        public var weight: Float
        /// T of softmax(z / T), for teacher and students alike.
        public var temperature: Float

        public init(weight: Float, temperature: Float) {
            self.weight = weight
            self.temperature = temperature
        }
    }
    /// nil: no distillation (the paper). The teacher, the deepest exit that ran, gets no
    /// gradient from the term; the term is not gated, so every shallow exit learns it on every sample.
    public var distillation: SelfDistillation? {
        didSet {
            precondition(
                distillation == nil || outputs.allSatisfy { $0 == classes },
                "self-distillation needs every exit to answer the same \(classes) classes")
        }
    }
    private let teacherCache = LayerCache()
    private let teacherLogCache = LayerCache()
    private let studentCache = LayerCache()
    private let studentLogCache = LayerCache()
    private let distillationLossCache = LayerCache()

    public init(exits: Int, classes: Int, outputs: [Int]? = nil, classGroups: ClassGroups? = nil) {
        self.exits = exits
        self.classes = classes
        self.outputs = outputs ?? Array(repeating: classes, count: exits)
        self.classGroups = classGroups
        precondition(self.outputs.count == exits, "\(self.outputs.count) output counts for \(exits) exits")
    }

    /// An objective for `network`'s exits, with ClassyNet's groups if it has "other" outputs.
    public convenience init(network: EarlyExitNetwork, classGroups: ClassGroups? = nil) {
        self.init(
            exits: network.exitCount, classes: network.classes, outputs: network.exitOutputs, classGroups: classGroups)
    }

    public func reserve(maxBatch: Int) {
        guard maxBatch > capacity else { return }
        capacity = maxBatch
        probabilityCaches = outputs.map { count in
            let cache = LayerCache()
            cache.reserve(maxBatch * count)
            return cache
        }
        for cache in [lossCache, confidenceCache, trueClassCache, gateCache] { cache.reserve(exits * maxBatch) }
        for cache in [teacherCache, teacherLogCache, studentCache, studentLogCache] {
            cache.reserve(maxBatch * classes)
        }
        distillationLossCache.reserve(maxBatch)
        targetCache.reserve(exits * maxBatch)
        predictionCache.reserve(exits * maxBatch)
        scaledGateCache.reserve(maxBatch)
    }

    /// Sums over the local batch, one entry per exit; summed over ranks they describe the global batch.
    public struct Statistics: Equatable, Sendable {
        /// sum_i CE_e(i): the unweighted loss of each exit.
        public var loss: [Double]
        /// sum_i lambda_e(i) CE_e(i), plus alpha T^2 KL_e(i) with self-distillation: what exit e optimises.
        public var weightedLoss: [Double]
        /// sum_i lambda_e(i): how much each exit learned from.
        public var gate: [Double]
        /// samples each exit classifies correctly.
        public var correct: [Double]

        public init(exits: Int) {
            loss = Array(repeating: 0, count: exits)
            weightedLoss = loss
            gate = loss
            correct = loss
        }

        /// All sums in one array, for one all-reduce.
        public var flattened: [Double] { loss + weightedLoss + gate + correct }

        public init(flattened values: [Double]) {
            let e = values.count / 4
            loss = Array(values[0..<e])
            weightedLoss = Array(values[e..<(2 * e)])
            gate = Array(values[(2 * e)..<(3 * e)])
            correct = Array(values[(3 * e)..<(4 * e)])
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

    /// How a weighting's gates become loss weights: with a `spread`, each exit's gates first
    /// become 1 + spread (gate_e(i) - mean_i gate_e), clamped at 0, the mean taken over this
    /// rank's part of the batch (as BatchNorm's statistics are without synchronisation); then
    /// lambda_e(i) = gate_e(i) * scale_e + leak for every exit whose scale is not 0, and 0 for
    /// the others; with `normalized`, divided by their sum over the exits. Leak and
    /// normalisation are the stabilisers of the authors' public SoftCGT code: a leak keeps every
    /// exit learning a little from every sample, normalising gives every sample the same total
    /// weight. The defaults change nothing (the paper).
    public struct WeightAdjustment: Equatable, Sendable {
        /// Exit e's factor (0 switches its loss off; `method.anneal`); nil means all 1.
        public var exitScale: [Float]?
        public var leak: Float
        public var normalized: Bool
        /// `method.spread`: how far the weights move around 1 with the gates.
        public var spread: Float?

        public init(exitScale: [Float]? = nil, leak: Float = 0, normalized: Bool = false, spread: Float? = nil) {
            self.exitScale = exitScale
            self.leak = leak
            self.normalized = normalized
            self.spread = spread
        }

        /// Applies the adjustment in place to exit-major weights of `exits` exits.
        func apply(to w: UnsafeMutableBufferPointer<Float>, exits: Int, batch: Int) {
            if let spread, batch > 0 {
                for e in 0..<exits {
                    var sum: Float = 0
                    for i in 0..<batch { sum += w[e * batch + i] }
                    let mean = sum / Float(batch)
                    for i in 0..<batch { w[e * batch + i] = max(0, 1 + spread * (w[e * batch + i] - mean)) }
                }
            }
            guard exitScale != nil || leak != 0 || normalized else { return }
            for e in 0..<exits {
                let scale = exitScale?[e] ?? 1
                for i in 0..<batch { w[e * batch + i] = scale == 0 ? 0 : w[e * batch + i] * scale + leak }
            }
            guard normalized else { return }
            for i in 0..<batch {
                var sum: Float = 0
                for e in 0..<exits { sum += w[e * batch + i] }
                guard sum > 0 else { continue }
                for e in 0..<exits { w[e * batch + i] /= sum }
            }
        }
    }

    /// Computes the loss of the last forward pass of `network` and writes every exit's logit gradient.
    /// - Parameters:
    ///   - globalBatch: N of Eq. 2, the number of samples in the step over all ranks.
    ///   - adjustment: per-exit factors, leak and normalisation applied to the gates.
    ///   - activeExits: only exits `0..<activeExits` ran (`TrainingScope.exitLimit`); the
    ///     others get zero statistics and no gradient.
    @discardableResult
    public func lossAndGradients(
        network: EarlyExitNetwork, labels: UnsafeBufferPointer<Int32>, batch: Int, weighting: ExitWeighting,
        globalBatch: Int, adjustment: WeightAdjustment = WeightAdjustment(), activeExits: Int? = nil
    ) -> Statistics {
        precondition(batch <= capacity, "objective reserved for \(capacity) samples, got \(batch)")
        precondition(labels.count >= batch, "\(labels.count) labels for a batch of \(batch)")
        let active = activeExits ?? exits
        let predicted = predict(network: network, labels: labels, batch: batch, activeExits: active)
        let w = gates.mutablePrefix(count: active * batch)
        weighting.weights(for: predicted, into: w)
        adjustment.apply(to: w, exits: active, batch: batch)
        var statistics = Statistics(exits: exits)
        let inverseN = 1 / Float(globalBatch)
        // Buffers read once: the loop below then indexes plain pointers.
        let (losses, predictions, scaledGates) = (self.losses, self.predictions, self.scaledGates)
        for e in 0..<active {
            var lossSum = 0.0
            var weightedSum = 0.0
            var gateSum = 0.0
            var correct = 0.0
            for i in 0..<batch {
                let k = e * batch + i
                let lambda = w[k]
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
                probabilities: UnsafeBufferPointer(probabilityCaches[e].storage),
                labels: targets(exit: e, labels: labels, batch: batch),
                weights: UnsafeBufferPointer(scaledGates), rows: batch, classes: outputs[e],
                logitGradient: network.logitGradient(exit: e, batch: batch), smoothing: labelSmoothing)
        }
        if let distillation, active > 1 {
            distill(
                network: network, batch: batch, exits: active, settings: distillation, globalBatch: globalBatch,
                statistics: &statistics)
        }
        return statistics
    }

    /// Adds the self-distillation term's gradient to every exit but the deepest active one, and
    /// its value to their weighted losses.
    private func distill(
        network: EarlyExitNetwork, batch: Int, exits active: Int, settings: SelfDistillation, globalBatch: Int,
        statistics: inout Statistics
    ) {
        let n = batch * classes
        let (teacher, teacherLog) = (
            teacherCache.storage.mutablePrefix(count: n), teacherLogCache.storage.mutablePrefix(count: n)
        )
        let (student, studentLog) = (
            studentCache.storage.mutablePrefix(count: n), studentLogCache.storage.mutablePrefix(count: n)
        )
        let losses = distillationLossCache.storage.mutablePrefix(count: batch)
        TemperedSoftmax.forward(
            logits: network.logits(exit: active - 1, batch: batch), rows: batch, classes: classes,
            temperature: settings.temperature, probabilities: teacher, logProbabilities: teacherLog)
        for e in 0..<(active - 1) {
            TemperedSoftmax.forward(
                logits: network.logits(exit: e, batch: batch), rows: batch, classes: classes,
                temperature: settings.temperature, probabilities: student, logProbabilities: studentLog)
            TemperedSoftmax.distillationBackward(
                student: UnsafeBufferPointer(student), studentLog: UnsafeBufferPointer(studentLog),
                teacher: UnsafeBufferPointer(teacher), teacherLog: UnsafeBufferPointer(teacherLog), rows: batch,
                classes: classes, temperature: settings.temperature, weight: settings.weight / Float(globalBatch),
                losses: losses, logitGradient: network.logitGradient(exit: e, batch: batch))
            var sum = 0.0
            for i in 0..<batch { sum += Double(losses[i]) }
            statistics.weightedLoss[e] += Double(settings.weight) * sum
        }
    }

    /// Softmax, confidence and prediction of every exit (of the first `activeExits`) for the
    /// last forward pass. A shallow exit that predicts "other" reports prediction -1 and
    /// confidence 0: it declines to answer.
    public func predict(
        network: EarlyExitNetwork, labels: UnsafeBufferPointer<Int32>, batch: Int, activeExits: Int? = nil
    ) -> ExitPredictions {
        let active = activeExits ?? exits
        for e in 0..<active {
            let range = (e * batch)..<((e + 1) * batch)
            let n = outputs[e]
            let exitLabels = targets(exit: e, labels: labels, batch: batch)
            SoftmaxCrossEntropy.forward(
                logits: network.logits(exit: e, batch: batch), labels: exitLabels, rows: batch, classes: n,
                probabilities: probabilityCaches[e].storage,
                losses: UnsafeMutableBufferPointer(rebasing: losses[range]),
                confidence: UnsafeMutableBufferPointer(rebasing: confidence[range]),
                predictions: UnsafeMutableBufferPointer(rebasing: predictions[range]), smoothing: labelSmoothing)
            for i in 0..<batch { trueClass[e * batch + i] = probabilityCaches[e].storage[i * n + Int(exitLabels[i])] }
            if n > classes {
                for k in range where predictions[k] == Int32(classes) {
                    predictions[k] = -1
                    confidence[k] = 0
                }
            }
        }
        return lastPredictions(labels: labels, batch: batch, exits: active)
    }

    /// Exit e's training targets: the labels, or with class groups the label inside the group
    /// and "other" (`classes`) outside it.
    private func targets(exit e: Int, labels: UnsafeBufferPointer<Int32>, batch: Int) -> UnsafeBufferPointer<Int32> {
        guard let classGroups, classGroups.groups[e] != nil else {
            return UnsafeBufferPointer(rebasing: labels[0..<batch])
        }
        let exitTargets = UnsafeMutableBufferPointer(rebasing: targets[(e * batch)..<((e + 1) * batch)])
        for i in 0..<batch { exitTargets[i] = classGroups.target(labels[i], exit: e) }
        return UnsafeBufferPointer(exitTargets)
    }

    /// The predictions of the last pass for its first `exits` exits (what `predict` returned).
    public func lastPredictions(labels: UnsafeBufferPointer<Int32>, batch: Int, exits active: Int) -> ExitPredictions {
        ExitPredictions(
            confidence: UnsafeBufferPointer(rebasing: confidence[0..<(active * batch)]),
            predictions: UnsafeBufferPointer(rebasing: predictions[0..<(active * batch)]),
            trueClassProbability: UnsafeBufferPointer(rebasing: trueClass[0..<(active * batch)]),
            labels: labels, exits: active, batch: batch)
    }

    /// The loss weights of the last `lossAndGradients`, exit-major, after the adjustment.
    public func lastGates(batch: Int) -> UnsafeBufferPointer<Float> { gates.prefix(count: exits * batch) }

    /// The probabilities of exit e from the last pass, `[batch, outputs[e]]`.
    public func probabilities(exit e: Int, batch: Int) -> UnsafeBufferPointer<Float> {
        probabilityCaches[e].storage.prefix(count: batch * outputs[e])
    }
}
