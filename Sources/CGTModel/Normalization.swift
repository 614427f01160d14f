import CGTKernels
import CGTRandom

/// Batch normalisation with learned scale and shift, as PyTorch's `BatchNorm1d` (dense input,
/// `spatial == 1`) and `BatchNorm2d` (`[C, H, W]` input, statistics per channel).
///
/// A `[C, H, W]` map may be channels-last or blocked (`layout`): its statistics are then
/// vectorised across channels, as those of a `BatchNorm1d` over `N * H * W` rows of C features.
///
/// With `appliesReLU` the layer is BatchNorm followed by ReLU, in one pass over the values each
/// way (the networks' blocks use it so; ReLU has no parameters, so checkpoints are the same).
///
/// `running_mean` and `running_var` are buffers, not parameters: they are checkpointed but
/// never all-reduced or updated by the optimizer. `num_batches_tracked` is kept for PyTorch's
/// `load_state_dict`.
public final class BatchNorm: Layer {
    public let name = "bn"
    public let inputShape: [Int]
    public let momentum: Float
    public let epsilon: Float
    /// The memory order of a `[C, H, W]` input (ignored for dense input).
    public let layout: MapLayout
    /// Whether the output is max(BatchNorm(x), 0).
    public let appliesReLU: Bool
    public private(set) var batchesTracked = 0
    private var slots: (gamma: TensorSlot, beta: TensorSlot, mean: TensorSlot, variance: TensorSlot)!
    private var gamma = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    private var beta = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    private var gammaGradient = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    private var betaGradient = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    private var runningMean = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    private var runningVariance = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    private let normalized = LayerCache()
    private let statistics = LayerCache()
    /// The count the last training forward normalised over (all ranks with a reducer).
    private var reductionCount: Float = 0
    /// oneDNN's passes per batch size, for statistics of this rank's batch.
    private var primitives: [Int: BatchNormPrimitives] = [:]
    /// Which computed the last training forward, so that its backward matches it.
    private var lastTraining = Computation.kernels

    /// What computes a training pass: oneDNN's primitives for maps with statistics of the local
    /// batch (faster there, see `BatchNormPrimitives`); cgt's kernels for dense features (faster
    /// there) and whenever a reducer synchronises the statistics.
    private enum Computation { case primitives, kernels }

    private var training: Computation { inputShape.count == 3 && statisticsReducer == nil ? .primitives : .kernels }

    /// Sums the per-channel statistics over all ranks (sync BatchNorm); nil keeps them local,
    /// as PyTorch's DistributedDataParallel does by default.
    public var statisticsReducer: BatchNormKernels.StatisticsReducer?

    /// - Parameter shape: `[features]` or `[channels, height, width]`.
    ///   - layout: the memory order of a `[channels, height, width]` input.
    ///   - appliesReLU: whether a ReLU follows, computed in the same pass.
    public init(
        shape: [Int], momentum: Float = 0.1, epsilon: Float = 1e-5, layout: MapLayout = .channelsFirst,
        appliesReLU: Bool = false
    ) {
        precondition(
            !shape.isEmpty && shape.allSatisfy { $0 > 0 }, "BatchNorm needs a non-empty positive shape, got \(shape)")
        precondition(
            shape.count == 1 || layout.admits(channels: shape[0]),
            "BatchNorm: \(shape[0]) channels fill no blocks of 16")
        inputShape = shape
        self.momentum = momentum
        self.epsilon = epsilon
        self.layout = layout
        self.appliesReLU = appliesReLU
    }

    public var outputShape: [Int] { inputShape }
    public var channels: Int { inputShape[0] }
    public var spatial: Int { inputShape.dropFirst().reduce(1, *) }
    /// At inference BatchNorm is one scale and one shift per value, and the ReLU one comparison.
    public var inferenceFLOPs: Int { (appliesReLU ? 3 : 2) * inputCount }

    public func declare(into layout: inout ParameterLayoutBuilder, prefix: String) {
        let c = [channels]
        slots = (
            TensorSlot(name: "\(prefix).weight", shape: c, offset: layout.parameter("\(prefix).weight", shape: c)),
            TensorSlot(name: "\(prefix).bias", shape: c, offset: layout.parameter("\(prefix).bias", shape: c)),
            TensorSlot(
                name: "\(prefix).running_mean", shape: c, offset: layout.buffer("\(prefix).running_mean", shape: c)),
            TensorSlot(
                name: "\(prefix).running_var", shape: c, offset: layout.buffer("\(prefix).running_var", shape: c))
        )
    }

    public func bind(to store: ParameterStore) {
        gamma = store.parameter(slots.gamma)
        beta = store.parameter(slots.beta)
        gammaGradient = store.gradient(slots.gamma)
        betaGradient = store.gradient(slots.beta)
        runningMean = store.buffer(slots.mean)
        runningVariance = store.buffer(slots.variance)
    }

    public func initialize(using generator: inout SeededGenerator) {
        gamma.update(repeating: 1)
        beta.update(repeating: 0)
        runningMean.update(repeating: 0)
        runningVariance.update(repeating: 1)
        batchesTracked = 0
    }

    /// Restores the count of training batches (from a checkpoint).
    public func setBatchesTracked(_ count: Int) { batchesTracked = count }

    public func reserve(maxBatch: Int) {
        normalized.reserve(maxBatch * inputCount)
        statistics.reserve(2 * channels)
        if training == .primitives { _ = primitives(batch: maxBatch) }
    }

    /// What computes training passes at `batch` (oneDNN's "bnorm_jit:avx512_core" or cgt's kernels), for benchmarks.
    public func implementation(batch: Int) -> String {
        switch training {
        case .primitives: "oneDNN \(primitives(batch: batch).implementation)"
        case .kernels: statisticsReducer == nil ? "cgt SIMD kernels" : "cgt SIMD kernels (synchronised statistics)"
        }
    }

    public func primitiveImplementations(batch: Int) -> [PrimitiveImplementation] {
        training == .primitives ? primitives(batch: batch).primitiveImplementations : []
    }

    private func primitives(batch: Int) -> BatchNormPrimitives {
        if let made = primitives[batch] { return made }
        do {
            let made = try BatchNormPrimitives(
                batch: batch, channels: channels,
                spatial: inputShape.count == 3 ? (inputShape[1], inputShape[2]) : nil,
                layout: layout, appliesReLU: appliesReLU, epsilon: epsilon)
            primitives[batch] = made
            return made
        } catch {
            preconditionFailure("BatchNorm \(inputShape): \(error)")
        }
    }

    private func shape(_ batch: Int) -> BatchNormKernels.Shape {
        BatchNormKernels.Shape(batch: batch, channels: channels, spatial: spatial, layout: layout)
    }

    public func forward(
        _ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>, batch: Int,
        context: ForwardContext
    ) {
        let momentumNow: Float
        switch context.mode {
        case .inference:
            BatchNormKernels.forwardInference(
                input, shape: shape(batch), gamma: UnsafeBufferPointer(gamma), beta: UnsafeBufferPointer(beta),
                runningMean: UnsafeBufferPointer(runningMean), runningVariance: UnsafeBufferPointer(runningVariance),
                epsilon: epsilon, relu: appliesReLU, output: output)
            return
        case .training:
            momentumNow = momentum
            batchesTracked += 1
        case .recalibration(let index):
            momentumNow = 1 / Float(index + 1)
        }
        precondition(
            batch > 1 || spatial > 1 || statisticsReducer != nil,
            "BatchNorm in training mode needs more than one value per channel (batch of \(batch))")
        let stats = statistics.storage
        guard training == .kernels else {
            // This rank's statistics: oneDNN's pass, then the running statistics as PyTorch keeps them.
            let p = primitives(batch: batch)
            let mean = stats.baseAddress!
            let variance = mean + channels
            p.forward(
                input: input.baseAddress!, gamma: gamma.baseAddress!, beta: beta.baseAddress!,
                output: output.baseAddress!,
                batchMean: mean, batchVariance: variance)
            let m = Float(batch * spatial)
            let unbiasing = m > 1 ? m / (m - 1) : 1
            for j in 0..<channels {
                runningMean[j] = (1 - momentumNow) * runningMean[j] + momentumNow * mean[j]
                runningVariance[j] = (1 - momentumNow) * runningVariance[j] + momentumNow * variance[j] * unbiasing
            }
            reductionCount = m
            lastTraining = .primitives
            return
        }
        lastTraining = .kernels
        reductionCount = BatchNormKernels.forwardTraining(
            input, shape: shape(batch), gamma: UnsafeBufferPointer(gamma), beta: UnsafeBufferPointer(beta),
            runningMean: runningMean, runningVariance: runningVariance, momentum: momentumNow, epsilon: epsilon,
            mean: stats.mutablePrefix(count: channels),
            invStd: UnsafeMutableBufferPointer(rebasing: stats[channels..<(2 * channels)]),
            normalized: normalized.storage, output: output, relu: appliesReLU, reducer: statisticsReducer)
    }

    public func backward(
        input: UnsafeBufferPointer<Float>, output: UnsafeBufferPointer<Float>,
        outputGradient: UnsafeBufferPointer<Float>, inputGradient: UnsafeMutableBufferPointer<Float>?, batch: Int
    ) {
        let stats = statistics.storage
        if lastTraining == .primitives {
            let mean = stats.baseAddress!
            primitives(batch: batch).backward(
                input: input.baseAddress!, outputGradient: outputGradient.baseAddress!, gamma: gamma.baseAddress!,
                beta: beta.baseAddress!,
                batchMean: mean, batchVariance: mean + channels, gammaGradient: gammaGradient.baseAddress!,
                betaGradient: betaGradient.baseAddress!,
                inputGradient: (inputGradient ?? normalized.storage).baseAddress!)
            return
        }
        BatchNormKernels.backward(
            outputGradient: outputGradient, normalized: UnsafeBufferPointer(normalized.storage), shape: shape(batch),
            gamma: UnsafeBufferPointer(gamma), invStd: UnsafeBufferPointer(rebasing: stats[channels..<(2 * channels)]),
            gammaGradient: gammaGradient, betaGradient: betaGradient, inputGradient: inputGradient,
            reluOutput: appliesReLU ? output : nil, reducer: statisticsReducer, reductionCount: reductionCount)
    }
}
