import CGTKernels
import CGTRandom

/// L2W's per-sample exit weights (Han et al., ECCV 2022, "Learning to Weight Samples for
/// Dynamic Early-exiting Networks"): a weight prediction network reads a sample's loss at every
/// exit and gives one weight per exit, r_e(i) = sigmoid(g(l_1(i), ..., l_K(i)))_e; the job's
/// `method.spread` then centres them, lambda_e(i) = 1 + spread (r_e(i) - mean_i r_e).
///
/// The network is a Linear -> ReLU -> Linear MLP with its own parameters and Adam optimizer;
/// the training loop trains it on the meta objective (`L2WMetaStep` in CGTTraining) with the
/// coefficients `accumulateMetaGradient` takes. Its weights, like CGT's gates, are constants
/// of the backbone's backward pass.
public final class LearnedExitWeights: ExitWeighting {
    public var name: String { "l2w" }
    public let exits: Int
    public let hiddenWidth: Int
    /// The weight prediction network's parameters ("l2w.0.linear.weight", ...) and gradients.
    public let store: ParameterStore
    public let optimizer: Adam
    private let hidden: Sequential
    private let output: Sequential
    private let inputCache = LayerCache()
    private let weightCache = LayerCache()
    private var capacity = 0
    /// The batch of the last `weights(for:into:)`, whose forward pass the meta gradient uses.
    public private(set) var lastBatch = 0

    public init(exits: Int, hiddenWidth: Int, seed: UInt64) {
        self.exits = exits
        self.hiddenWidth = hiddenWidth
        hidden = Sequential(
            prefix: "l2w.0",
            layers: [Linear(inputFeatures: exits, outputFeatures: hiddenWidth), ReLU(shape: [hiddenWidth])])
        output = Sequential(prefix: "l2w.1", layers: [Linear(inputFeatures: hiddenWidth, outputFeatures: exits)])
        var layout = ParameterLayoutBuilder()
        hidden.declare(into: &layout)
        output.declare(into: &layout)
        store = ParameterStore(layout: layout)
        hidden.bind(to: store)
        output.bind(to: store)
        var generator = SeededGenerator(seed: seed, stream: 7)
        hidden.initialize(using: &generator)
        output.initialize(using: &generator)
        optimizer = Adam(parameterCount: store.parameterCount)
    }

    public func reserve(maxBatch: Int) {
        guard maxBatch > capacity else { return }
        capacity = maxBatch
        hidden.reserve(maxBatch: maxBatch)
        output.reserve(maxBatch: maxBatch)
        inputCache.reserve(maxBatch * exits)
        weightCache.reserve(maxBatch * exits)
    }

    /// lambda before the spread: r_e(i) from the losses -log p_e,y(i) of the pass's exits.
    public func weights(for outputs: ExitPredictions, into weights: UnsafeMutableBufferPointer<Float>) {
        let batch = outputs.batch
        reserve(maxBatch: batch)
        precondition(outputs.exits == exits, "l2w weighs \(exits) exits, the pass has \(outputs.exits)")
        lastBatch = batch
        // Sample-major losses: the network's input rows.
        let input = inputCache.storage
        for e in 0..<exits {
            for i in 0..<batch {
                input[i * exits + e] = -FastMath.log(max(outputs.trueClassProbability[e * batch + i], 1e-30))
            }
        }
        let context = ForwardContext(mode: .training)
        hidden.forward(UnsafeBufferPointer(input), batch: batch, context: context)
        output.forward(hidden.output(batch: batch), batch: batch, context: context)
        let logits = output.output(batch: batch)
        let r = weightCache.storage
        for e in 0..<exits {
            for i in 0..<batch {
                let value = 1 / (1 + FastMath.exp(-logits[i * exits + e]))
                r[e * batch + i] = value
                weights[e * batch + i] = value
            }
        }
    }

    /// Writes into `store.gradients` the gradient, with respect to the network's parameters, of
    /// sum_e,i c_e(i) lambda_e(i) for the batch of the last `weights(for:into:)`, with lambda
    /// centred by `spread` as `ExitObjective.WeightAdjustment` centres it (its clamp at 0 ignored).
    /// - Parameter coefficients: c, exit-major (`exits * lastBatch`).
    public func accumulateMetaGradient(coefficients c: UnsafeBufferPointer<Float>, spread: Float?) {
        let batch = lastBatch
        precondition(c.count >= exits * batch, "\(c.count) coefficients for \(exits) x \(batch)")
        let r = weightCache.storage
        let gradient = output.outputGradient(batch: batch)
        for e in 0..<exits {
            var mean: Float = 0
            if spread != nil {
                for i in 0..<batch { mean += c[e * batch + i] }
                mean /= Float(max(batch, 1))
            }
            for i in 0..<batch {
                let k = e * batch + i
                // d lambda / d r is spread, and the mean term moves every sample's lambda alike.
                let dr = spread.map { $0 * (c[k] - mean) } ?? c[k]
                gradient[i * exits + e] = dr * r[k] * (1 - r[k])
            }
        }
        output.backward(
            input: hidden.output(batch: batch), inputGradient: hidden.outputGradient(batch: batch), batch: batch)
        hidden.backward(input: UnsafeBufferPointer(inputCache.storage), inputGradient: nil, batch: batch)
    }
}
