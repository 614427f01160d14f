/// Parameter updates over flat buffers, following PyTorch's `torch.optim` arithmetic so that
/// results can be compared with it.
public enum OptimizerKernels {
    /// SGD with momentum and weight decay (Sutskever et al., 2013, in PyTorch's form):
    /// g = grad + wd * p; v = mu * v + g; p -= lr * (nesterov ? g + mu * v : v).
    @inlinable
    public static func sgdStep(
        parameters: UnsafeMutableBufferPointer<Float>, gradients: UnsafeBufferPointer<Float>,
        velocity: UnsafeMutableBufferPointer<Float>,
        learningRate lr: Float, momentum mu: Float, weightDecay wd: Float, nesterov: Bool
    ) {
        let n = parameters.count
        precondition(gradients.count == n && velocity.count == n, "sgdStep: buffer lengths differ")
        let p = parameters.baseAddress!
        let g = gradients.baseAddress!
        let v = velocity.baseAddress!
        let full = vectorizedPrefix(n)
        var i = 0
        while i < full {
            var gv = loadVector(g + i)
            let pv = loadVector(p + i)
            gv.addProduct(wd, pv)
            var vv = loadVector(v + i)
            vv = vv * mu + gv
            storeVector(vv, v + i)
            let direction = nesterov ? gv + mu * vv : vv
            storeVector(pv - lr * direction, p + i)
            i &+= 16
        }
        while i < n {
            let gs = g[i] + wd * p[i]
            v[i] = mu * v[i] + gs
            p[i] -= lr * (nesterov ? gs + mu * v[i] : v[i])
            i &+= 1
        }
    }

    /// Adam (Kingma and Ba, 2015) and AdamW (Loshchilov and Hutter, 2019), as `torch.optim.Adam(W)`:
    /// AdamW decays p *= 1 - lr * wd before the step; Adam adds wd * p to the gradient.
    /// m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
    /// p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
    /// - Parameter step: t, counted from 1.
    @inlinable
    public static func adamStep(
        parameters: UnsafeMutableBufferPointer<Float>, gradients: UnsafeBufferPointer<Float>,
        firstMoment: UnsafeMutableBufferPointer<Float>, secondMoment: UnsafeMutableBufferPointer<Float>,
        learningRate lr: Float, beta1: Float, beta2: Float, epsilon: Float, weightDecay wd: Float,
        decoupledWeightDecay: Bool, step: Int
    ) {
        let n = parameters.count
        precondition(
            gradients.count == n && firstMoment.count == n && secondMoment.count == n, "adamStep: buffer lengths differ"
        )
        precondition(step >= 1, "adamStep: steps count from 1")
        let correction1 = 1 - Float(Double(beta1).power(step))
        let correction2Root = Float((1 - Double(beta2).power(step)).squareRoot())
        let stepSize = lr / correction1
        let decay: Float = decoupledWeightDecay ? 1 - lr * wd : 1
        let coupled: Float = decoupledWeightDecay ? 0 : wd
        let p = parameters.baseAddress!
        let g = gradients.baseAddress!
        let m = firstMoment.baseAddress!
        let v = secondMoment.baseAddress!
        let full = vectorizedPrefix(n)
        var i = 0
        while i < full {
            let pv = loadVector(p + i) * decay
            var gv = loadVector(g + i)
            gv.addProduct(coupled, loadVector(p + i))
            let mv = beta1 * loadVector(m + i) + (1 - beta1) * gv
            let vv = beta2 * loadVector(v + i) + (1 - beta2) * gv * gv
            storeVector(mv, m + i)
            storeVector(vv, v + i)
            let denominator = vv.squareRoot() / correction2Root + epsilon
            storeVector(pv - stepSize * mv / denominator, p + i)
            i &+= 16
        }
        while i < n {
            let pv = p[i] * decay
            let gs = g[i] + coupled * p[i]
            m[i] = beta1 * m[i] + (1 - beta1) * gs
            v[i] = beta2 * v[i] + (1 - beta2) * gs * gs
            p[i] = pv - stepSize * m[i] / (v[i].squareRoot() / correction2Root + epsilon)
            i &+= 1
        }
    }
}

extension Double {
    /// self^exponent for a non-negative whole exponent, by repeated squaring.
    @inlinable
    internal func power(_ exponent: Int) -> Double {
        var result = 1.0
        var base = self
        var e = exponent
        while e > 0 {
            if e & 1 == 1 { result *= base }
            base *= base
            e >>= 1
        }
        return result
    }
}
