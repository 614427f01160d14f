/// Batch normalisation (Ioffe and Szegedy, 2015) over `[batch, channels, spatial]` tensors.
///
/// Dense layers use `spatial == 1` (statistics per feature over the batch, vectorised across
/// features); convolutions use `spatial == H * W` (statistics per channel over batch and
/// positions, vectorised along each contiguous plane). Variances are computed in two passes,
/// which stays accurate when the mean is large against the spread.
public enum BatchNormKernels {
    /// The extent of a normalised tensor: `batch * channels * spatial` values.
    public struct Shape: Equatable, Sendable {
        public var batch: Int
        public var channels: Int
        public var spatial: Int
        public init(batch: Int, channels: Int, spatial: Int = 1) {
            self.batch = batch
            self.channels = channels
            self.spatial = spatial
        }
        public var count: Int { batch * channels * spatial }
        /// How many values each channel's statistics are taken over.
        public var reductionSize: Int { batch * spatial }
    }

    /// Per-channel sums over batch and positions of f(x) for the two-pass statistics.
    @inlinable
    internal static func channelSums(
        _ x: UnsafePointer<Float>, _ shape: Shape, into sums: UnsafeMutablePointer<Float>,
        centeredOn center: UnsafePointer<Float>?
    ) {
        let c = shape.channels, s = shape.spatial
        sums.update(repeating: 0, count: c)
        if s == 1 {
            let full = vectorizedPrefix(c)
            for n in 0..<shape.batch {
                let row = x + n * c
                var j = 0
                if let center {
                    while j < full {
                        let d = loadVector(row + j) - loadVector(center + j)
                        storeVector(loadVector(sums + j) + d * d, sums + j)
                        j &+= 16
                    }
                    while j < c { let d = row[j] - center[j]; sums[j] += d * d; j &+= 1 }
                } else {
                    while j < full {
                        storeVector(loadVector(sums + j) + loadVector(row + j), sums + j)
                        j &+= 16
                    }
                    while j < c { sums[j] += row[j]; j &+= 1 }
                }
            }
        } else {
            for n in 0..<shape.batch {
                for j in 0..<c {
                    let plane = x + (n * c + j) * s
                    if let center {
                        let m = center[j]
                        var acc = FloatVector()
                        var i = 0
                        while i + 16 <= s {
                            let d = loadVector(plane + i) - m
                            acc.addProduct(d, d)
                            i &+= 16
                        }
                        var total = acc.sum()
                        while i < s { let d = plane[i] - m; total += d * d; i &+= 1 }
                        sums[j] += total
                    } else {
                        sums[j] += Reductions.sum(UnsafeBufferPointer(start: plane, count: s))
                    }
                }
            }
        }
    }

    /// y = x * scale[c] + shift[c]; optionally also xhat = (x - mean[c]) * invStd[c].
    @inlinable
    internal static func affine(
        _ x: UnsafePointer<Float>, _ shape: Shape,
        scale: UnsafePointer<Float>, shift: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>
    ) {
        let c = shape.channels, s = shape.spatial
        if s == 1 {
            let full = vectorizedPrefix(c)
            for n in 0..<shape.batch {
                let row = x + n * c, out = y + n * c
                var j = 0
                while j < full {
                    storeVector(loadVector(row + j) * loadVector(scale + j) + loadVector(shift + j), out + j)
                    j &+= 16
                }
                while j < c { out[j] = row[j] * scale[j] + shift[j]; j &+= 1 }
            }
        } else {
            for n in 0..<shape.batch {
                for j in 0..<c {
                    let offset = (n * c + j) * s
                    let plane = x + offset, out = y + offset
                    let a = scale[j], b = shift[j]
                    var i = 0
                    while i + 16 <= s {
                        storeVector(loadVector(plane + i) * a + b, out + i)
                        i &+= 16
                    }
                    while i < s { out[i] = plane[i] * a + b; i &+= 1 }
                }
            }
        }
    }

    /// Sums per-channel statistics over the ranks of a job, in place (sync BatchNorm), or nil
    /// for statistics of the local batch only.
    public typealias StatisticsReducer = (UnsafeMutableBufferPointer<Float>) -> Void

    /// Training-mode forward: normalises with the batch's statistics and updates the running ones.
    ///
    /// running = (1 - momentum) * running + momentum * batch statistic, with the unbiased batch
    /// variance (the PyTorch convention). `momentum = 1 / (k + 1)` on the k-th batch gives the
    /// plain average over batches, which the BatchNorm re-estimation uses. With a `reducer`, the
    /// sums behind mean and variance (and the count) are taken over every rank's batch.
    /// - Parameters:
    ///   - normalized: receives xhat, kept for the backward pass.
    ///   - mean, invStd: receive the batch mean and 1 / sqrt(var + eps) per channel.
    /// - Returns: the number of values each channel's statistics were taken over (all ranks).
    @inlinable @discardableResult
    public static func forwardTraining(
        _ x: UnsafeBufferPointer<Float>, shape: Shape,
        gamma: UnsafeBufferPointer<Float>, beta: UnsafeBufferPointer<Float>,
        runningMean: UnsafeMutableBufferPointer<Float>, runningVariance: UnsafeMutableBufferPointer<Float>,
        momentum: Float, epsilon: Float,
        mean: UnsafeMutableBufferPointer<Float>, invStd: UnsafeMutableBufferPointer<Float>,
        normalized: UnsafeMutableBufferPointer<Float>, output: UnsafeMutableBufferPointer<Float>,
        reducer: StatisticsReducer? = nil
    ) -> Float {
        let c = shape.channels
        precondition(x.count >= shape.count && output.count >= shape.count && normalized.count >= shape.count,
                     "BatchNorm forward: buffers smaller than \(shape)")
        precondition(gamma.count == c && beta.count == c && mean.count >= c && invStd.count >= c,
                     "BatchNorm forward: per-channel buffers do not have \(c) entries")
        let meanP = mean.baseAddress!, invP = invStd.baseAddress!
        var m = Float(shape.reductionSize)
        channelSums(x.baseAddress!, shape, into: meanP, centeredOn: nil)
        if let reducer {
            withUnsafeTemporaryAllocation(of: Float.self, capacity: c + 1) { packed in
                packed.baseAddress!.update(from: meanP, count: c)
                packed[c] = m
                reducer(packed)
                meanP.update(from: packed.baseAddress!, count: c)
                m = packed[c]
            }
        }
        for j in 0..<c { meanP[j] /= m }
        channelSums(x.baseAddress!, shape, into: invP, centeredOn: UnsafePointer(meanP))
        reducer?(UnsafeMutableBufferPointer(start: invP, count: c))
        let unbiasing = m > 1 ? m / (m - 1) : 1
        for j in 0..<c {
            let variance = invP[j] / m
            runningMean[j] = (1 - momentum) * runningMean[j] + momentum * meanP[j]
            runningVariance[j] = (1 - momentum) * runningVariance[j] + momentum * variance * unbiasing
            invP[j] = 1 / (variance + epsilon).squareRoot()
        }
        // xhat = x * invStd - mean * invStd, then y = xhat * gamma + beta.
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * c) { scratch in
            let scale = scratch.baseAddress!, offset = scale + c
            for j in 0..<c {
                scale[j] = invP[j]
                offset[j] = -meanP[j] * invP[j]
            }
            affine(x.baseAddress!, shape, scale: scale, shift: offset, into: normalized.baseAddress!)
        }
        affine(UnsafePointer(normalized.baseAddress!), shape, scale: gamma.baseAddress!, shift: beta.baseAddress!,
               into: output.baseAddress!)
        return m
    }

    /// Inference-mode forward: y = (x - running mean) / sqrt(running var + eps) * gamma + beta.
    @inlinable
    public static func forwardInference(
        _ x: UnsafeBufferPointer<Float>, shape: Shape,
        gamma: UnsafeBufferPointer<Float>, beta: UnsafeBufferPointer<Float>,
        runningMean: UnsafeBufferPointer<Float>, runningVariance: UnsafeBufferPointer<Float>,
        epsilon: Float, output: UnsafeMutableBufferPointer<Float>
    ) {
        let c = shape.channels
        precondition(x.count >= shape.count && output.count >= shape.count, "BatchNorm inference: buffers smaller than \(shape)")
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * c) { scratch in
            let scale = scratch.baseAddress!, shift = scale + c
            for j in 0..<c {
                scale[j] = gamma[j] / (runningVariance[j] + epsilon).squareRoot()
                shift[j] = beta[j] - runningMean[j] * scale[j]
            }
            affine(x.baseAddress!, shape, scale: scale, shift: shift, into: output.baseAddress!)
        }
    }

    /// Backward of the training-mode forward.
    ///
    /// dgamma = sum dy * xhat, dbeta = sum dy, and
    /// dx = gamma * invStd / m * (m * dy - dbeta - xhat * dgamma), m the reduction size.
    /// `inputGradient` may be nil when no earlier layer needs it. With a `reducer` (sync
    /// BatchNorm) the sums in dx are taken over all ranks and `reductionCount` is the count the
    /// forward pass returned; `gammaGradient` and `betaGradient` keep this rank's sums, which
    /// the gradient all-reduce then adds up like every other parameter gradient.
    @inlinable
    public static func backward(
        outputGradient dy: UnsafeBufferPointer<Float>, normalized xhat: UnsafeBufferPointer<Float>, shape: Shape,
        gamma: UnsafeBufferPointer<Float>, invStd: UnsafeBufferPointer<Float>,
        gammaGradient: UnsafeMutableBufferPointer<Float>, betaGradient: UnsafeMutableBufferPointer<Float>,
        inputGradient: UnsafeMutableBufferPointer<Float>?,
        reducer: StatisticsReducer? = nil, reductionCount: Float? = nil
    ) {
        let c = shape.channels, s = shape.spatial
        precondition(dy.count >= shape.count && xhat.count >= shape.count, "BatchNorm backward: buffers smaller than \(shape)")
        let dyP = dy.baseAddress!, xhatP = xhat.baseAddress!
        let dgP = gammaGradient.baseAddress!, dbP = betaGradient.baseAddress!
        dgP.update(repeating: 0, count: c)
        dbP.update(repeating: 0, count: c)
        if s == 1 {
            let full = vectorizedPrefix(c)
            for n in 0..<shape.batch {
                let g = dyP + n * c, h = xhatP + n * c
                var j = 0
                while j < full {
                    let gv = loadVector(g + j)
                    storeVector(loadVector(dbP + j) + gv, dbP + j)
                    var acc = loadVector(dgP + j)
                    acc.addProduct(gv, loadVector(h + j))
                    storeVector(acc, dgP + j)
                    j &+= 16
                }
                while j < c { dbP[j] += g[j]; dgP[j] += g[j] * h[j]; j &+= 1 }
            }
        } else {
            for n in 0..<shape.batch {
                for j in 0..<c {
                    let offset = (n * c + j) * s
                    dbP[j] += Reductions.sum(UnsafeBufferPointer(start: dyP + offset, count: s))
                    dgP[j] += Reductions.dot(UnsafeBufferPointer(start: dyP + offset, count: s),
                                             UnsafeBufferPointer(start: xhatP + offset, count: s))
                }
            }
        }
        // Every rank has the same layers, so all skip the reduction here together.
        guard let inputGradient else { return }
        let m = reductionCount ?? Float(shape.reductionSize)
        // dx = a[c] * dy + b[c] * xhat + d[c] with a = gamma*invStd, b = -a*dgamma/m, d = -a*dbeta/m.
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 5 * c) { scratch in
            let a = scratch.baseAddress!, b = a + c, d = b + c, sums = d + c
            sums.update(from: dgP, count: c)
            (sums + c).update(from: dbP, count: c)
            reducer?(UnsafeMutableBufferPointer(start: sums, count: 2 * c))
            for j in 0..<c {
                a[j] = gamma[j] * invStd[j]
                b[j] = -a[j] * sums[j] / m
                d[j] = -a[j] * sums[c + j] / m
            }
            let dx = inputGradient.baseAddress!
            if s == 1 {
                let full = vectorizedPrefix(c)
                for n in 0..<shape.batch {
                    let g = dyP + n * c, h = xhatP + n * c, out = dx + n * c
                    var j = 0
                    while j < full {
                        var v = loadVector(d + j)
                        v.addProduct(loadVector(a + j), loadVector(g + j))
                        v.addProduct(loadVector(b + j), loadVector(h + j))
                        storeVector(v, out + j)
                        j &+= 16
                    }
                    while j < c { out[j] = a[j] * g[j] + b[j] * h[j] + d[j]; j &+= 1 }
                }
            } else {
                for n in 0..<shape.batch {
                    for j in 0..<c {
                        let offset = (n * c + j) * s
                        let g = dyP + offset, h = xhatP + offset, out = dx + offset
                        let av = FloatVector(repeating: a[j]), bv = FloatVector(repeating: b[j])
                        var i = 0
                        while i + 16 <= s {
                            var v = FloatVector(repeating: d[j])
                            v.addProduct(av, loadVector(g + i))
                            v.addProduct(bv, loadVector(h + i))
                            storeVector(v, out + i)
                            i &+= 16
                        }
                        while i < s { out[i] = a[j] * g[i] + b[j] * h[i] + d[j]; i &+= 1 }
                    }
                }
            }
        }
    }
}
