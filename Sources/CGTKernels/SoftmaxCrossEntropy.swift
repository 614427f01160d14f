/// p[c] = e^((z[c] - best) scale) over one row of `classes` logits, and the sum of the p[c];
/// with `shifted`, also (z[c] - best) scale there: the exponent and sum of a softmax at
/// temperature 1 / scale, whose largest exponent is e^0 when `best` is the row's maximum.
@inlinable @inline(__always)
internal func exponentiateRow(
    _ z: UnsafePointer<Float>, classes: Int, best: Float, scale: Float, into p: UnsafeMutablePointer<Float>,
    shifted: UnsafeMutablePointer<Float>?
) -> Float {
    let full = vectorizedPrefix(classes)
    var sums = FloatVector()
    var c = 0
    while c < full {
        let x = (loadVector(z + c) - best) * scale
        if let shifted { storeVector(x, shifted + c) }
        let e = FastMath.exp(x)
        storeVector(e, p + c)
        sums += e
        c &+= 16
    }
    var total = sums.sum()
    if c < classes {
        var tail = FloatVector(repeating: -.infinity)
        for lane in 0..<(classes - c) { tail[lane] = (z[c + lane] - best) * scale }
        let e = FastMath.exp(tail)
        for lane in 0..<(classes - c) {
            shifted?[c + lane] = tail[lane]
            p[c + lane] = e[lane]
            total += e[lane]
        }
    }
    return total
}

/// Fused softmax and cross-entropy over the logits of one exit, `[rows, classes]` row-major.
public enum SoftmaxCrossEntropy {
    /// Computes, per row: the class probabilities, the cross-entropy -log p[y], the
    /// confidence max_c p[c] and the predicted class argmax_c p[c] (ties: the first class).
    ///
    /// With label smoothing eps the target is q = (1 - eps) onehot(y) + eps / classes and the
    /// loss -sum_c q[c] log p[c] (Szegedy et al., 2016); confidence and prediction do not change.
    ///
    /// The softmax subtracts the row maximum first, so the largest exponent is e^0 = 1 and
    /// the confidence is exactly 1 / sum.
    @inlinable
    public static func forward(
        logits: UnsafeBufferPointer<Float>, labels: UnsafeBufferPointer<Int32>, rows: Int, classes: Int,
        probabilities: UnsafeMutableBufferPointer<Float>, losses: UnsafeMutableBufferPointer<Float>,
        confidence: UnsafeMutableBufferPointer<Float>, predictions: UnsafeMutableBufferPointer<Int32>,
        smoothing: Float = 0
    ) {
        precondition(
            classes > 0 && logits.count >= rows * classes && probabilities.count >= rows * classes,
            "softmax: buffers do not fit \(rows) x \(classes)")
        precondition(
            labels.count >= rows && losses.count >= rows && confidence.count >= rows && predictions.count >= rows,
            "softmax: per-row buffers shorter than \(rows)")
        let full = vectorizedPrefix(classes)
        for r in 0..<rows {
            let z = logits.baseAddress! + r * classes
            let p = probabilities.baseAddress! + r * classes
            var best = z[0]
            var argmax = 0
            for c in 1..<classes where z[c] > best {
                best = z[c]
                argmax = c
            }
            let total = exponentiateRow(z, classes: classes, best: best, scale: 1, into: p, shifted: nil)
            let inverse = 1 / total
            var c = 0
            while c < full {
                storeVector(loadVector(p + c) * inverse, p + c)
                c &+= 16
            }
            while c < classes {
                p[c] *= inverse
                c &+= 1
            }
            let label = Int(labels[r])
            precondition(label >= 0 && label < classes, "label \(label) outside 0..<\(classes)")
            // The difference first: at large logits, adding `best` to the log rounds away the loss.
            var margin = best - z[label]
            if smoothing != 0 {
                // -sum_c q[c] log p[c] = log(total) + (1 - eps)(best - z[y]) + eps (best - mean z).
                var gap: Float = 0
                for k in 0..<classes { gap += best - z[k] }
                margin = (1 - smoothing) * margin + smoothing * gap / Float(classes)
            }
            losses[r] = FastMath.log(total) + margin
            confidence[r] = inverse
            predictions[r] = Int32(argmax)
        }
    }

    /// d logits[r, c] = weights[r] * (p[r, c] - q[r, c]), q the (smoothed) one-hot target of `forward`.
    ///
    /// `weights` carries the exit weight lambda_e(i) already divided by the global batch size,
    /// so the result is the gradient of sum_i weights[i] * CE(i).
    @inlinable
    public static func backward(
        probabilities: UnsafeBufferPointer<Float>, labels: UnsafeBufferPointer<Int32>,
        weights: UnsafeBufferPointer<Float>,
        rows: Int, classes: Int, logitGradient: UnsafeMutableBufferPointer<Float>, smoothing: Float = 0
    ) {
        precondition(
            probabilities.count >= rows * classes && logitGradient.count >= rows * classes && weights.count >= rows,
            "softmax backward: buffers do not fit \(rows) x \(classes)")
        let full = vectorizedPrefix(classes)
        for r in 0..<rows {
            let p = probabilities.baseAddress! + r * classes
            let g = logitGradient.baseAddress! + r * classes
            let w = weights[r]
            let spread = w * smoothing / Float(classes)
            var c = 0
            while c < full {
                storeVector(loadVector(p + c) * w - spread, g + c)
                c &+= 16
            }
            while c < classes {
                g[c] = p[c] * w - spread
                c &+= 1
            }
            g[Int(labels[r])] -= w * (1 - smoothing)
        }
    }
}
