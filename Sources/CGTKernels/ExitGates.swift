/// The per-sample exit weights of Confidence-Gated Training (Mokssit et al.), vectorised over samples.
///
/// All arrays are exit-major: entry `e * batch + i` belongs to exit e and sample i.
public enum ExitGates {
    /// HardCGT, Eq. 3-5: lambda_1 = 1 and lambda_e = prod_{e' < e} (1 - delta_e'), where
    /// delta_e = 1 when exit e predicts the label (Eq. 4) with confidence s_e >= tau (Eq. 3).
    @inlinable
    public static func hard(
        confidence: UnsafeBufferPointer<Float>, predictions: UnsafeBufferPointer<Int32>,
        labels: UnsafeBufferPointer<Int32>,
        exits: Int, batch: Int, tau: Float, weights: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(exits >= 1, "hard gates need at least one exit")
        precondition(
            confidence.count >= exits * batch && predictions.count >= exits * batch && weights.count >= exits * batch
                && labels.count >= batch, "hard gates: buffers do not fit \(exits) exits x \(batch) samples")
        let w = weights.baseAddress!
        w.update(repeating: 1, count: batch)
        for e in 1..<exits {
            for i in 0..<batch {
                let previous = (e - 1) * batch + i
                let succeeded = predictions[previous] == labels[i] && confidence[previous] >= tau
                w[e * batch + i] = succeeded ? 0 : w[previous]
            }
        }
    }

    /// SoftCGT, Eq. 6-7: r_e = 1 - sigmoid(k (s_e - tau)) and lambda_e = prod_{e' < e} r_e'.
    ///
    /// `scores` is s_e: the maximum probability in the paper, or the true-class probability.
    /// The sharpness k is an extension: k = 1 is the paper's gate.
    @inlinable
    public static func soft(
        scores: UnsafeBufferPointer<Float>, exits: Int, batch: Int, tau: Float, sharpness k: Float,
        weights: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(exits >= 1, "soft gates need at least one exit")
        precondition(
            scores.count >= exits * batch && weights.count >= exits * batch,
            "soft gates: buffers do not fit \(exits) exits x \(batch) samples")
        let w = weights.baseAddress!
        let s = scores.baseAddress!
        w.update(repeating: 1, count: batch)
        let full = vectorizedPrefix(batch)
        for e in 1..<exits {
            let previousScores = s + (e - 1) * batch
            let previous = w + (e - 1) * batch
            let current = w + e * batch
            var i = 0
            while i < full {
                let residual = 1 - FastMath.sigmoid(k * (loadVector(previousScores + i) - tau))
                storeVector(loadVector(previous + i) * residual, current + i)
                i &+= 16
            }
            while i < batch {
                let residual = 1 - 1 / (1 + FastMath.exp(-k * (previousScores[i] - tau)))
                current[i] = previous[i] * residual
                i &+= 1
            }
        }
    }
}
