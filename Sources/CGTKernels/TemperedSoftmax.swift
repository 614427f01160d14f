/// The softmax at a temperature, and the distillation loss between two of them: what
/// self-distillation between exits needs (Hinton et al., 2015; BYOT, Zhang et al., ICCV 2019).
public enum TemperedSoftmax {
    /// Per row of `[rows, classes]` logits z: p = softmax(z / T) and log p.
    ///
    /// The log comes from the same pass (log p_c = (z_c - max z) / T - log sum), so the loss
    /// needs no logarithm per class.
    @inlinable
    public static func forward(
        logits: UnsafeBufferPointer<Float>, rows: Int, classes: Int, temperature: Float,
        probabilities: UnsafeMutableBufferPointer<Float>, logProbabilities: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(
            classes > 0 && logits.count >= rows * classes && probabilities.count >= rows * classes
                && logProbabilities.count >= rows * classes,
            "tempered softmax: buffers do not fit \(rows) x \(classes)")
        precondition(temperature > 0, "tempered softmax: temperature \(temperature) must be positive")
        let inverseT = 1 / temperature
        for r in 0..<rows {
            let z = logits.baseAddress! + r * classes
            let p = probabilities.baseAddress! + r * classes
            let logP = logProbabilities.baseAddress! + r * classes
            var best = z[0]
            for c in 1..<classes where z[c] > best { best = z[c] }
            let total = exponentiateRow(z, classes: classes, best: best, scale: inverseT, into: p, shifted: logP)
            let inverse = 1 / total
            let logTotal = FastMath.log(total)
            for k in 0..<classes {
                p[k] *= inverse
                logP[k] -= logTotal
            }
        }
    }

    /// Per row: T^2 KL(q || p) into `losses`, and weight * T (p - q) added to `logitGradient`,
    /// the gradient of weight * T^2 KL with respect to the student's logits z (p = softmax(z / T)).
    ///
    /// q is the teacher's softened prediction and gets no gradient. The T^2 keeps the gradient's
    /// size independent of T (Hinton et al., 2015).
    @inlinable
    public static func distillationBackward(
        student: UnsafeBufferPointer<Float>, studentLog: UnsafeBufferPointer<Float>,
        teacher: UnsafeBufferPointer<Float>, teacherLog: UnsafeBufferPointer<Float>,
        rows: Int, classes: Int, temperature: Float, weight: Float,
        losses: UnsafeMutableBufferPointer<Float>, logitGradient: UnsafeMutableBufferPointer<Float>
    ) {
        let n = rows * classes
        precondition(
            student.count >= n && studentLog.count >= n && teacher.count >= n && teacherLog.count >= n
                && logitGradient.count >= n && losses.count >= rows,
            "distillation: buffers do not fit \(rows) x \(classes)")
        let scale = weight * temperature
        let squaredT = temperature * temperature
        for r in 0..<rows {
            let base = r * classes
            var kl: Float = 0
            for c in base..<(base + classes) {
                let q = teacher[c]
                // 0 log 0 = 0: a class the teacher rules out adds nothing.
                if q > 0 { kl += q * (teacherLog[c] - studentLog[c]) }
                logitGradient[c] += scale * (student[c] - q)
            }
            losses[r] = squaredT * kl
        }
    }
}
