import CGTKernels

/// What each exit said about each sample in a forward pass; exit-major, `[exits * batch]`.
public struct ExitPredictions {
    /// s_e(i) = max_c p_e,c(i).
    public var confidence: UnsafeBufferPointer<Float>
    /// argmax_c p_e,c(i) (Eq. 4).
    public var predictions: UnsafeBufferPointer<Int32>
    /// p_e,y_i(i), the probability given to the true class.
    public var trueClassProbability: UnsafeBufferPointer<Float>
    public var labels: UnsafeBufferPointer<Int32>
    public var exits: Int
    public var batch: Int

    /// Adds each exit's correct answers per class to `correct[e][c]` and the samples per class
    /// to `counts[c]`: the recall ClassyNet's groups are chosen by.
    public func tallyRecall(correct: inout [[Double]], counts: inout [Double]) {
        for i in 0..<batch {
            let y = Int(labels[i])
            counts[y] += 1
            for e in 0..<exits where predictions[e * batch + i] == labels[i] { correct[e][y] += 1 }
        }
    }
}

/// Chooses the weight lambda_e(i) of every exit's loss on every sample (Eq. 1 and Eq. 2).
///
/// The weights are computed from the current forward pass and treated as constants in the
/// backward pass: no gradient flows through a gate.
public protocol ExitWeighting {
    /// A short name for logs ("softcgt").
    var name: String { get }
    /// Writes lambda_e(i) to `weights[e * batch + i]`.
    func weights(for outputs: ExitPredictions, into weights: UnsafeMutableBufferPointer<Float>)
}

/// Fixed, input-independent weights lambda_e (Eq. 1): BranchyNet's scalarisation.
public struct FixedExitWeights: ExitWeighting {
    public let lambdas: [Float]
    public var name: String { "fixed" }
    public init(_ lambdas: [Float]) { self.lambdas = lambdas }

    public func weights(for outputs: ExitPredictions, into weights: UnsafeMutableBufferPointer<Float>) {
        precondition(lambdas.count >= outputs.exits, "\(lambdas.count) fixed weights for \(outputs.exits) exits")
        for (e, lambda) in lambdas.prefix(outputs.exits).enumerated() {
            UnsafeMutableBufferPointer(rebasing: weights[(e * outputs.batch)..<((e + 1) * outputs.batch)]).update(
                repeating: lambda)
        }
    }
}

/// Per-sample weights read from a table, exit-major: weights decided outside the pass (L2W's
/// meta objective routes each sample to one exit; tests freeze the gates of a pass).
public struct ExitWeightTable: ExitWeighting {
    public let values: [Float]
    public var name: String { "table" }
    public init(_ values: [Float]) { self.values = values }

    public func weights(for outputs: ExitPredictions, into weights: UnsafeMutableBufferPointer<Float>) {
        let count = outputs.exits * outputs.batch
        precondition(
            values.count >= count, "a table of \(values.count) weights for \(outputs.exits) x \(outputs.batch)")
        for k in 0..<count { weights[k] = values[k] }
    }
}

/// HardCGT (Eq. 3-5): a deeper exit learns from a sample only when every earlier exit was
/// wrong or below the confidence threshold tau.
public struct HardCGT: ExitWeighting {
    public let tau: Float
    public var name: String { "hardcgt" }
    public init(tau: Float) { self.tau = tau }

    public func weights(for outputs: ExitPredictions, into weights: UnsafeMutableBufferPointer<Float>) {
        ExitGates.hard(
            confidence: outputs.confidence, predictions: outputs.predictions, labels: outputs.labels,
            exits: outputs.exits, batch: outputs.batch, tau: tau, weights: weights)
    }
}

/// SoftCGT (Eq. 6-7): deeper exits learn in proportion to the residual uncertainty
/// r_e = 1 - sigmoid(k (s_e - tau)) left by earlier exits.
///
/// Extensions beyond the paper: the sharpness k (k = 1 is the paper's gate; since s and tau
/// lie in [0, 1], r then stays within [0.27, 0.73], and within [0.48, 0.71] at the paper's
/// tau = 0.9; larger k moves r towards HardCGT's 0 or 1), and the score s_e may be the
/// true-class probability instead of the maximum probability.
public struct SoftCGT: ExitWeighting {
    public enum Score: String, Sendable, Codable, CaseIterable {
        case maxProbability = "max_probability"
        case trueClassProbability = "true_class_probability"
    }
    public let tau: Float
    public let sharpness: Float
    public let score: Score
    public var name: String { "softcgt" }

    public init(tau: Float, sharpness: Float = 1, score: Score = .maxProbability) {
        self.tau = tau
        self.sharpness = sharpness
        self.score = score
    }

    public func weights(for outputs: ExitPredictions, into weights: UnsafeMutableBufferPointer<Float>) {
        let scores = score == .maxProbability ? outputs.confidence : outputs.trueClassProbability
        ExitGates.soft(
            scores: scores, exits: outputs.exits, batch: outputs.batch, tau: tau, sharpness: sharpness, weights: weights
        )
    }
}
