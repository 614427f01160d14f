import CGTCheckpoint
import CGTKernels
import CGTModel

/// L2W's meta step (Han et al., ECCV 2022), run after training steps: the weight prediction
/// network learns weights under which a training step lowers the meta objective, the loss of
/// early-exit inference (each sample's loss at the exit that answers it at the job's tau).
///
/// With lambda_e(i) the weights and l_e(i) the losses of step t's batch, a step
/// theta' = theta - a grad sum_i lambda_e(i) l_e(i) / N changes the meta loss L_meta by
/// -a sum_e,i (d lambda_e(i) / d phi) <v, grad l_e(i)> / N to first order, v = grad L_meta.
/// Two approximations keep it at two forward passes and one backward pass:
/// - **first order in a**: v is taken at the parameters after the step instead of after a
///   second, virtual step (they differ by one step of the optimizer);
/// - **finite differences** (DARTS, Liu et al., ICLR 2019): <v, grad l_e(i)> is
///   (l_e(i)(theta + eps v) - l_e(i)(theta - eps v)) / (2 eps), eps = step / |v|, so the
///   per-sample gradients are never formed.
/// The meta batch is the previous step's batch (held out from step t's update); a is folded
/// into the network's learning rate. BatchNorm's running statistics and the parameters are
/// restored after the extra passes, so the backbone's training sees none of them.
///
/// Its whole state (the weight network, its optimizer, the step count and the meta batch of
/// every rank) goes into checkpoints (`L2WState`), so an l2w run resumes bitwise.
final class L2WMetaStep: TrainingHook {
    /// The weight network: the backbone's steps are weighted by it, this step trains it.
    let weights: LearnedExitWeights
    /// The meta objective's own: the loss of early-exit inference, without self-distillation.
    private let objective: ExitObjective
    /// Which exit answers each sample of the meta batch: the paper's rule at the job's tau.
    let policy: ExitPolicy
    let interval: Int
    let learningRate: Float
    let relativeStep: Float
    let spread: Float?
    let gradientEquilibrium: Bool
    private var steps = 0
    /// The previous step's batch: the meta batch of the next meta step.
    private var previousX: [Float] = []
    private var previousLabels: [Int32] = []
    private var previousIDs: [Int64] = []
    private var previousGlobal = 0
    private var previousKey: UInt64 = 0
    // Work space, grown once.
    private var routing: [Float] = []
    private var savedParameters: [Float] = []
    private var savedBuffers: [Float] = []
    private var lossesUp: [Float] = []
    private var coefficients: [Float] = []
    private var metaGradient: [Double] = []

    init(
        weights: LearnedExitWeights, network: EarlyExitNetwork, labelSmoothing: Float, tau: Float, interval: Int,
        learningRate: Float, relativeStep: Float, spread: Float?, gradientEquilibrium: Bool
    ) {
        self.weights = weights
        objective = ExitObjective(network: network, classGroups: nil)
        objective.labelSmoothing = labelSmoothing
        policy = .uniform(tau, exits: network.exitCount)
        self.interval = interval
        self.learningRate = learningRate
        self.relativeStep = relativeStep
        self.spread = spread
        self.gradientEquilibrium = gradientEquilibrium
    }

    func stepFinished(_ context: HookContext, step: FinishedStep) throws {
        steps += 1
        defer { remember(step, inputCount: context.network.inputCount) }
        // The same decision on every rank: the counts are global.
        guard previousGlobal > 0, steps % interval == 0 else { return }
        precondition(weights.lastBatch == step.batch, "l2w: the weights are of another batch than the step's")
        let network = context.network
        let store = network.store
        let exits = network.exitCount
        objective.reserve(maxBatch: max(step.batch, previousLabels.count))
        savedBuffers.replaceSubrange(savedBuffers.indices, with: store.buffers)
        savedParameters.replaceSubrange(savedParameters.indices, with: store.parameters)
        defer {
            _ = store.buffers.update(from: savedBuffers)
            _ = store.parameters.update(from: savedParameters)
        }
        try metaLossGradient(context)
        // eps v with |eps v| = relativeStep; every rank holds the same reduced v.
        var norm = 0.0
        for g in store.gradients { norm += Double(g) * Double(g) }
        guard norm > 0 && norm.isFinite else { return }
        let eps = relativeStep / Float(norm.squareRoot())
        let count = exits * step.batch
        if lossesUp.count < count { lossesUp = Array(repeating: 0, count: count) }
        if coefficients.count < count { coefficients = Array(repeating: 0, count: count) }
        for direction: Float in [1, -1] {
            for k in store.parameters.indices {
                store.parameters[k] = savedParameters[k] + direction * eps * store.gradients[k]
            }
            _ = store.buffers.update(from: savedBuffers)
            network.forward(
                step.x, batch: step.batch,
                context: ForwardContext(mode: .training, sampleIDs: step.sampleIDs, randomKey: step.randomKey),
                scope: step.scope)
            let p = objective.predict(network: network, labels: step.labels, batch: step.batch)
                .trueClassProbability
            for k in 0..<count {
                let loss = -FastMath.log(max(p[k], 1e-30))
                if direction > 0 {
                    lossesUp[k] = loss
                } else {
                    // c = d L_meta / d lambda = -<v, grad l> / N, a folded into the learning rate.
                    coefficients[k] = -(lossesUp[k] - loss) / (2 * eps) / Float(step.globalCount)
                }
            }
        }
        coefficients.withUnsafeBufferPointer {
            weights.accumulateMetaGradient(coefficients: UnsafeBufferPointer(rebasing: $0[0..<count]), spread: spread)
        }
        // The network's gradient summed over the ranks, as the backbone's is.
        metaGradient.removeAll(keepingCapacity: true)
        metaGradient.append(contentsOf: weights.store.gradients.lazy.map(Double.init))
        try context.strategy.sum(&metaGradient)
        for k in weights.store.gradients.indices { weights.store.gradients[k] = Float(metaGradient[k]) }
        weights.optimizer.step(weights.store, learningRate: learningRate)
    }

    /// v = grad L_meta on the previous batch, summed over the ranks, in `store.gradients`.
    private func metaLossGradient(_ context: HookContext) throws {
        let network = context.network
        let exits = network.exitCount
        let batch = previousLabels.count
        previousX.withUnsafeBufferPointer { x in
            previousLabels.withUnsafeBufferPointer { labels in
                previousIDs.withUnsafeBufferPointer { ids in
                    network.forward(
                        x, batch: batch,
                        context: ForwardContext(mode: .training, sampleIDs: ids, randomKey: previousKey))
                    let p = objective.predict(network: network, labels: labels, batch: batch)
                    // Each sample's loss counts at the exit that answers it at tau.
                    if routing.count < exits * batch { routing = Array(repeating: 0, count: exits * batch) }
                    for i in 0..<batch {
                        let answering = policy.route(
                            score: { p.confidence[$0 * batch + i] }, prediction: { p.predictions[$0 * batch + i] })
                        for e in 0..<exits { routing[e * batch + i] = e == answering ? 1 : 0 }
                    }
                    objective.lossAndGradients(
                        network: network, labels: labels, batch: batch,
                        weighting: ExitWeightTable(routing),
                        globalBatch: previousGlobal)
                    network.backward(
                        input: x, batch: batch, gradientEquilibrium: gradientEquilibrium,
                        gradientsReady: context.strategy.gradientsReady)
                }
            }
        }
        try context.strategy.reduceGradients()
    }

    /// The state `gatherState` collected last, for rank 0's next checkpoint.
    private var gathered: L2WState?

    /// The weight network, the step count and every rank's meta batch (gathered to every rank).
    func gatherState(_ context: HookContext) throws {
        let features = try context.strategy.gather(previousX)
        let labels = try context.strategy.gather(previousLabels)
        let ids = try context.strategy.gather(previousIDs)
        let batch =
            previousGlobal > 0
            ? MetaBatch(
                features: features.flatMap { $0 }, labels: labels.flatMap { $0 }, sampleIDs: ids.flatMap { $0 },
                rankRows: labels.map(\.count), globalCount: previousGlobal, randomKey: previousKey) : nil
        gathered = L2WState(weights: weights, steps: steps, metaBatch: batch)
    }

    func record(into checkpoint: inout Checkpoint) {
        checkpoint.l2w = gathered
    }

    /// Rank 0 takes the state back; `synchronized` passes it on.
    func restore(from checkpoint: Checkpoint, source: String) throws {
        guard let state = checkpoint.l2w else {
            throw CheckpointError(
                file: source,
                "--resume: the checkpoint holds no l2w state (an older cgt wrote it); train the l2w run again from the start"
            )
        }
        try state.restore(into: weights, source: source)
        steps = state.steps
        restored = state.metaBatch
    }

    /// The meta batch rank 0 read from a checkpoint, until `synchronized` hands out the ranks' rows.
    private var restored: MetaBatch?

    /// Rank 0's weight network, optimizer, step count and meta batch reach every rank; each
    /// takes its rows of the meta batch.
    func synchronized(_ context: HookContext) throws {
        let strategy = context.strategy
        try strategy.broadcast(weights.store.parameters)
        for (_, state) in weights.optimizer.stateBuffers { try strategy.broadcast(state) }
        var counters = [
            Int64(weights.optimizer.stepCount), Int64(steps), Int64(restored?.globalCount ?? 0),
            Int64(bitPattern: restored?.randomKey ?? 0),
        ]
        try strategy.broadcast(&counters)
        weights.optimizer.stepCount = Int(counters[0])
        steps = Int(counters[1])
        guard counters[2] > 0 else { return }
        let features = try strategy.broadcastAnyLength(restored?.features ?? [])
        let labels = try strategy.broadcastAnyLength(restored?.labels ?? [])
        let ids = try strategy.broadcastAnyLength(restored?.sampleIDs ?? [])
        let rankRows = try strategy.broadcastAnyLength(restored?.rankRows ?? [])
        let batch = MetaBatch(
            features: features, labels: labels, sampleIDs: ids, rankRows: rankRows, globalCount: Int(counters[2]),
            randomKey: UInt64(bitPattern: counters[3]))
        let rows = batch.rows(ofRank: strategy.rank, of: strategy.ranks)
        let width = context.network.inputCount
        previousX = Array(features[(rows.lowerBound * width)..<(rows.upperBound * width)])
        previousLabels = Array(labels[rows])
        previousIDs = Array(ids[rows])
        previousGlobal = batch.globalCount
        previousKey = batch.randomKey
        restored = nil
    }

    private func remember(_ step: FinishedStep, inputCount: Int) {
        previousX.removeAll(keepingCapacity: true)
        previousX.append(contentsOf: step.x[0..<(step.batch * inputCount)])
        previousLabels.removeAll(keepingCapacity: true)
        previousLabels.append(contentsOf: step.labels[0..<step.batch])
        previousIDs.removeAll(keepingCapacity: true)
        previousIDs.append(contentsOf: step.sampleIDs[0..<step.batch])
        previousGlobal = step.globalCount
        previousKey = step.randomKey
    }
}
