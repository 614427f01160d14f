/// Batch normalisation (Ioffe and Szegedy, 2015) over `[batch, channels, spatial]` tensors.
///
/// Dense layers and channels-last maps use `spatial == 1` (statistics per feature over the rows,
/// vectorised across features); channels-first maps use `spatial == H * W` (statistics per
/// channel over batch and positions, vectorised along each contiguous plane); blocked maps
/// (`Shape.blockWidth`, `[batch, channels / w, spatial, w]` with w 8 or 16) are rows of w
/// channels, vectorised like the first. Variances are computed in two passes, which stays accurate when the mean is
/// large against the spread.
public enum BatchNormKernels {
    /// The extent of a normalised tensor: `batch * channels * spatial` values.
    public struct Shape: Equatable, Sendable {
        public var batch: Int
        public var channels: Int
        public var spatial: Int
        /// w when the values are `[batch, channels / w, spatial, w]` (`MapLayout.blockWidth` of
        /// a blocked layout), nil for `[batch, channels, spatial]`.
        public var blockWidth: Int?
        public init(batch: Int, channels: Int, spatial: Int = 1, blockWidth: Int? = nil) {
            precondition(
                blockWidth.map { $0 > 0 && channels % $0 == 0 } ?? true,
                "a BatchNorm in blocks of \(blockWidth ?? 0) needs whole blocks, got \(channels) channels")
            self.batch = batch
            self.channels = channels
            self.spatial = spatial
            self.blockWidth = blockWidth
        }

        /// The shape of a batch of `[channels, height * width = spatial]` maps in `layout`.
        public init(batch: Int, channels: Int, spatial: Int, layout: MapLayout) {
            switch layout {
            case .channelsFirst: self.init(batch: batch, channels: channels, spatial: spatial)
            case .channelsLast: self.init(batch: batch * spatial, channels: channels)
            case .blocked8, .blocked16:
                self.init(batch: batch, channels: channels, spatial: spatial, blockWidth: layout.blockWidth)
            }
        }
        public var count: Int { batch * channels * spatial }
        /// How many values each channel's statistics are taken over.
        public var reductionSize: Int { batch * spatial }
        /// Whether each position's channels lie side by side (in rows of all of them, or of a block's).
        @inlinable var channelsInRows: Bool { spatial == 1 || blockWidth != nil }
    }

    /// Calls `body(offset, firstChannel, width)` for every row of channel values of a shape
    /// whose `channelsInRows`: a row of all channels per sample and position, or of one block's
    /// per sample, block and position. Block rows go to `body` with `width` a constant (8 or 16),
    /// so that its loops compile to whole vectors and no tail.
    @inlinable @inline(__always)
    internal static func forEachRow(_ shape: Shape, _ body: (_ offset: Int, _ firstChannel: Int, _ width: Int) -> Void)
    {
        switch shape.blockWidth {
        case nil:
            let c = shape.channels
            for n in 0..<(shape.batch * shape.spatial) { body(n &* c, 0, c) }
        case 16?: forEachBlockRow(shape, width: 16, body)
        case 8?: forEachBlockRow(shape, width: 8, body)
        case let width?: forEachBlockRow(shape, width: width, body)
        }
    }

    /// The rows of `width` channels of a blocked shape, in memory order.
    @inlinable @inline(__always)
    internal static func forEachBlockRow(
        _ shape: Shape, width: Int, _ body: (_ offset: Int, _ firstChannel: Int, _ width: Int) -> Void
    ) {
        let blocks = shape.channels / width
        let spatial = shape.spatial
        var offset = 0
        for _ in 0..<shape.batch {
            for block in 0..<blocks {
                let first = block &* width
                for _ in 0..<spatial {
                    body(offset, first, width)
                    offset &+= width
                }
            }
        }
    }

    /// Per-channel sums over batch and positions of f(x) for the two-pass statistics.
    @inlinable
    internal static func channelSums(
        _ x: UnsafePointer<Float>, _ shape: Shape, into sums: UnsafeMutablePointer<Float>,
        centeredOn center: UnsafePointer<Float>?
    ) {
        let c = shape.channels
        let s = shape.spatial
        sums.update(repeating: 0, count: c)
        if shape.channelsInRows {
            forEachRow(shape) { offset, first, width in
                let full = vectorizedPrefix(width)
                let row = x + offset
                let sums = sums + first
                let center = center.map { $0 + first }
                var j = 0
                if let center {
                    while j < full {
                        let d = loadVector(row + j) - loadVector(center + j)
                        storeVector(loadVector(sums + j) + d * d, sums + j)
                        j &+= 16
                    }
                    if width &- j >= 8 {
                        let d = loadHalf(row + j) - loadHalf(center + j)
                        storeHalf(loadHalf(sums + j) + d * d, sums + j)
                        j &+= 8
                    }
                    while j < width {
                        let d = row[j] - center[j]
                        sums[j] += d * d
                        j &+= 1
                    }
                } else {
                    while j < full {
                        storeVector(loadVector(sums + j) + loadVector(row + j), sums + j)
                        j &+= 16
                    }
                    if width &- j >= 8 {
                        storeHalf(loadHalf(sums + j) + loadHalf(row + j), sums + j)
                        j &+= 8
                    }
                    while j < width {
                        sums[j] += row[j]
                        j &+= 1
                    }
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
                        while i < s {
                            let d = plane[i] - m
                            total += d * d
                            i &+= 1
                        }
                        sums[j] += total
                    } else {
                        sums[j] += Reductions.sum(UnsafeBufferPointer(start: plane, count: s))
                    }
                }
            }
        }
    }

    /// y = x * scale[c] + shift[c], or max(that, 0) with `relu` (BatchNorm followed by ReLU in one pass).
    @inlinable
    internal static func affine(
        _ x: UnsafePointer<Float>, _ shape: Shape,
        scale: UnsafePointer<Float>, shift: UnsafePointer<Float>, relu: Bool = false,
        into y: UnsafeMutablePointer<Float>
    ) {
        let c = shape.channels
        let s = shape.spatial
        if shape.channelsInRows {
            forEachRow(shape) { offset, first, width in
                let full = vectorizedPrefix(width)
                let row = x + offset
                let out = y + offset
                let scale = scale + first
                let shift = shift + first
                var j = 0
                while j < full {
                    let v = loadVector(row + j) * loadVector(scale + j) + loadVector(shift + j)
                    storeVector(relu ? rectified(v) : v, out + j)
                    j &+= 16
                }
                if width &- j >= 8 {
                    let v = loadHalf(row + j) * loadHalf(scale + j) + loadHalf(shift + j)
                    storeHalf(relu ? rectified(v) : v, out + j)
                    j &+= 8
                }
                while j < width {
                    let v = row[j] * scale[j] + shift[j]
                    out[j] = relu ? max(v, 0) : v
                    j &+= 1
                }
            }
        } else {
            for n in 0..<shape.batch {
                for j in 0..<c {
                    let offset = (n * c + j) * s
                    let plane = x + offset
                    let out = y + offset
                    let a = scale[j]
                    let b = shift[j]
                    var i = 0
                    while i + 16 <= s {
                        let v = loadVector(plane + i) * a + b
                        storeVector(relu ? rectified(v) : v, out + i)
                        i &+= 16
                    }
                    while i < s {
                        let v = plane[i] * a + b
                        out[i] = relu ? max(v, 0) : v
                        i &+= 1
                    }
                }
            }
        }
    }

    /// xhat = x * scale[c] + shift[c] and y = xhat * gamma[c] + beta[c] (max(y, 0) with `relu`)
    /// in one pass over x: the training forward's last step.
    @inlinable
    internal static func normalizeAndScale(
        _ x: UnsafePointer<Float>, _ shape: Shape, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
        gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, relu: Bool,
        normalized xhat: UnsafeMutablePointer<Float>, output y: UnsafeMutablePointer<Float>
    ) {
        let c = shape.channels
        let s = shape.spatial
        if shape.channelsInRows {
            forEachRow(shape) { offset, first, width in
                let full = vectorizedPrefix(width)
                let row = x + offset
                let h = xhat + offset
                let out = y + offset
                let scale = scale + first
                let shift = shift + first
                let gamma = gamma + first
                let beta = beta + first
                var j = 0
                while j < full {
                    let normalized = loadVector(row + j) * loadVector(scale + j) + loadVector(shift + j)
                    storeVector(normalized, h + j)
                    let v = normalized * loadVector(gamma + j) + loadVector(beta + j)
                    storeVector(relu ? rectified(v) : v, out + j)
                    j &+= 16
                }
                if width &- j >= 8 {
                    let normalized = loadHalf(row + j) * loadHalf(scale + j) + loadHalf(shift + j)
                    storeHalf(normalized, h + j)
                    let v = normalized * loadHalf(gamma + j) + loadHalf(beta + j)
                    storeHalf(relu ? rectified(v) : v, out + j)
                    j &+= 8
                }
                while j < width {
                    let normalized = row[j] * scale[j] + shift[j]
                    h[j] = normalized
                    let v = normalized * gamma[j] + beta[j]
                    out[j] = relu ? max(v, 0) : v
                    j &+= 1
                }
            }
        } else {
            for n in 0..<shape.batch {
                for j in 0..<c {
                    let offset = (n * c + j) * s
                    let plane = x + offset
                    let h = xhat + offset
                    let out = y + offset
                    let a = scale[j]
                    let b = shift[j]
                    let g = gamma[j]
                    let t = beta[j]
                    var i = 0
                    while i + 16 <= s {
                        let normalized = loadVector(plane + i) * a + b
                        storeVector(normalized, h + i)
                        let v = normalized * g + t
                        storeVector(relu ? rectified(v) : v, out + i)
                        i &+= 16
                    }
                    while i < s {
                        let normalized = plane[i] * a + b
                        h[i] = normalized
                        let v = normalized * g + t
                        out[i] = relu ? max(v, 0) : v
                        i &+= 1
                    }
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
    /// variance (the PyTorch convention). With `relu` the output is max(y, 0): BatchNorm and the
    /// ReLU after it in one pass. `momentum = 1 / (k + 1)` on the k-th batch gives the
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
        relu: Bool = false, reducer: StatisticsReducer? = nil
    ) -> Float {
        let c = shape.channels
        precondition(
            x.count >= shape.count && output.count >= shape.count && normalized.count >= shape.count,
            "BatchNorm forward: buffers smaller than \(shape)")
        precondition(
            gamma.count == c && beta.count == c && mean.count >= c && invStd.count >= c,
            "BatchNorm forward: per-channel buffers do not have \(c) entries")
        let meanP = mean.baseAddress!
        let invP = invStd.baseAddress!
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
            let scale = scratch.baseAddress!
            let offset = scale + c
            for j in 0..<c {
                scale[j] = invP[j]
                offset[j] = -meanP[j] * invP[j]
            }
            normalizeAndScale(
                x.baseAddress!, shape, scale: scale, shift: offset, gamma: gamma.baseAddress!, beta: beta.baseAddress!,
                relu: relu, normalized: normalized.baseAddress!, output: output.baseAddress!)
        }
        return m
    }

    /// Inference-mode forward: y = (x - running mean) / sqrt(running var + eps) * gamma + beta,
    /// or max(y, 0) with `relu`.
    @inlinable
    public static func forwardInference(
        _ x: UnsafeBufferPointer<Float>, shape: Shape,
        gamma: UnsafeBufferPointer<Float>, beta: UnsafeBufferPointer<Float>,
        runningMean: UnsafeBufferPointer<Float>, runningVariance: UnsafeBufferPointer<Float>,
        epsilon: Float, relu: Bool = false, output: UnsafeMutableBufferPointer<Float>
    ) {
        let c = shape.channels
        precondition(
            x.count >= shape.count && output.count >= shape.count, "BatchNorm inference: buffers smaller than \(shape)")
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * c) { scratch in
            let scale = scratch.baseAddress!
            let shift = scale + c
            for j in 0..<c {
                scale[j] = gamma[j] / (runningVariance[j] + epsilon).squareRoot()
                shift[j] = beta[j] - runningMean[j] * scale[j]
            }
            affine(x.baseAddress!, shape, scale: scale, shift: shift, relu: relu, into: output.baseAddress!)
        }
    }

    /// Backward of the training-mode forward.
    ///
    /// dgamma = sum dy * xhat, dbeta = sum dy, and
    /// dx = gamma * invStd / m * (m * dy - dbeta - xhat * dgamma), m the reduction size.
    /// `inputGradient` may be nil when no earlier layer needs it. With `reluOutput` (the output
    /// of a forward with `relu`) dy is first taken back through the ReLU: zero where that output
    /// is not positive, as `Elementwise.reluBackward`. With a `reducer` (sync BatchNorm) the
    /// sums in dx are taken over all ranks and `reductionCount` is the count the forward pass
    /// returned; `gammaGradient` and `betaGradient` keep this rank's sums, which the gradient
    /// all-reduce then adds up like every other parameter gradient.
    @inlinable
    public static func backward(
        outputGradient dy: UnsafeBufferPointer<Float>, normalized xhat: UnsafeBufferPointer<Float>, shape: Shape,
        gamma: UnsafeBufferPointer<Float>, invStd: UnsafeBufferPointer<Float>,
        gammaGradient: UnsafeMutableBufferPointer<Float>, betaGradient: UnsafeMutableBufferPointer<Float>,
        inputGradient: UnsafeMutableBufferPointer<Float>?, reluOutput: UnsafeBufferPointer<Float>? = nil,
        reducer: StatisticsReducer? = nil, reductionCount: Float? = nil
    ) {
        let c = shape.channels
        let s = shape.spatial
        precondition(
            dy.count >= shape.count && xhat.count >= shape.count && (reluOutput?.count ?? .max) >= shape.count,
            "BatchNorm backward: buffers smaller than \(shape)")
        let dyP = dy.baseAddress!
        let xhatP = xhat.baseAddress!
        let reluP = reluOutput?.baseAddress
        let dgP = gammaGradient.baseAddress!
        let dbP = betaGradient.baseAddress!
        let zero = FloatVector(repeating: 0)
        /// dy at `k`, through the ReLU when there is one.
        @inline(__always) func gradientVector(_ k: Int) -> FloatVector {
            guard let reluP else { return loadVector(dyP + k) }
            return zero.replacing(with: loadVector(dyP + k), where: loadVector(reluP + k) .> zero)
        }
        /// The same for half a vector (a row of an 8-channel block); a twin for the reason
        /// `rectified` has one (generic SIMD operations are lane loops).
        @inline(__always) func gradientHalf(_ k: Int) -> HalfVector {
            guard let reluP else { return loadHalf(dyP + k) }
            let zero = HalfVector(repeating: 0)
            return zero.replacing(with: loadHalf(dyP + k), where: loadHalf(reluP + k) .> zero)
        }
        @inline(__always) func gradient(_ k: Int) -> Float {
            guard let reluP else { return dyP[k] }
            return reluP[k] > 0 ? dyP[k] : 0
        }
        dgP.update(repeating: 0, count: c)
        dbP.update(repeating: 0, count: c)
        if shape.channelsInRows {
            forEachRow(shape) { row, first, width in
                let full = vectorizedPrefix(width)
                let h = xhatP + row
                let dgP = dgP + first
                let dbP = dbP + first
                var j = 0
                while j < full {
                    let gv = gradientVector(row + j)
                    storeVector(loadVector(dbP + j) + gv, dbP + j)
                    var acc = loadVector(dgP + j)
                    acc.addProduct(gv, loadVector(h + j))
                    storeVector(acc, dgP + j)
                    j &+= 16
                }
                if width &- j >= 8 {
                    let gv = gradientHalf(row + j)
                    storeHalf(loadHalf(dbP + j) + gv, dbP + j)
                    var acc = loadHalf(dgP + j)
                    acc.addProduct(gv, loadHalf(h + j))
                    storeHalf(acc, dgP + j)
                    j &+= 8
                }
                while j < width {
                    let g = gradient(row + j)
                    dbP[j] += g
                    dgP[j] += g * h[j]
                    j &+= 1
                }
            }
        } else if reluP == nil {
            for n in 0..<shape.batch {
                for j in 0..<c {
                    let offset = (n * c + j) * s
                    dbP[j] += Reductions.sum(UnsafeBufferPointer(start: dyP + offset, count: s))
                    dgP[j] += Reductions.dot(
                        UnsafeBufferPointer(start: dyP + offset, count: s),
                        UnsafeBufferPointer(start: xhatP + offset, count: s))
                }
            }
        } else {
            for n in 0..<shape.batch {
                for j in 0..<c {
                    let offset = (n * c + j) * s
                    var sum = FloatVector()
                    var dot = FloatVector()
                    var i = 0
                    while i + 16 <= s {
                        let gv = gradientVector(offset + i)
                        sum += gv
                        dot.addProduct(gv, loadVector(xhatP + offset + i))
                        i &+= 16
                    }
                    var sumTail: Float = 0
                    var dotTail: Float = 0
                    while i < s {
                        let g = gradient(offset + i)
                        sumTail += g
                        dotTail += g * xhatP[offset + i]
                        i &+= 1
                    }
                    dbP[j] += sum.sum() + sumTail
                    dgP[j] += dot.sum() + dotTail
                }
            }
        }
        // Every rank has the same layers, so all skip the reduction here together.
        guard let inputGradient else { return }
        let m = reductionCount ?? Float(shape.reductionSize)
        // dx = a[c] * dy + b[c] * xhat + d[c] with a = gamma*invStd, b = -a*dgamma/m, d = -a*dbeta/m.
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 5 * c) { scratch in
            let a = scratch.baseAddress!
            let b = a + c
            let d = b + c
            let sums = d + c
            sums.update(from: dgP, count: c)
            (sums + c).update(from: dbP, count: c)
            reducer?(UnsafeMutableBufferPointer(start: sums, count: 2 * c))
            for j in 0..<c {
                a[j] = gamma[j] * invStd[j]
                b[j] = -a[j] * sums[j] / m
                d[j] = -a[j] * sums[c + j] / m
            }
            let dx = inputGradient.baseAddress!
            if shape.channelsInRows {
                forEachRow(shape) { row, first, width in
                    let full = vectorizedPrefix(width)
                    let h = xhatP + row
                    let out = dx + row
                    let a = a + first
                    let b = b + first
                    let d = d + first
                    var j = 0
                    while j < full {
                        var v = loadVector(d + j)
                        v.addProduct(loadVector(a + j), gradientVector(row + j))
                        v.addProduct(loadVector(b + j), loadVector(h + j))
                        storeVector(v, out + j)
                        j &+= 16
                    }
                    if width &- j >= 8 {
                        var v = loadHalf(d + j)
                        v.addProduct(loadHalf(a + j), gradientHalf(row + j))
                        v.addProduct(loadHalf(b + j), loadHalf(h + j))
                        storeHalf(v, out + j)
                        j &+= 8
                    }
                    while j < width {
                        out[j] = a[j] * gradient(row + j) + b[j] * h[j] + d[j]
                        j &+= 1
                    }
                }
            } else {
                for n in 0..<shape.batch {
                    for j in 0..<c {
                        let offset = (n * c + j) * s
                        let h = xhatP + offset
                        let out = dx + offset
                        let av = FloatVector(repeating: a[j])
                        let bv = FloatVector(repeating: b[j])
                        var i = 0
                        while i + 16 <= s {
                            var v = FloatVector(repeating: d[j])
                            v.addProduct(av, gradientVector(offset + i))
                            v.addProduct(bv, loadVector(h + i))
                            storeVector(v, out + i)
                            i &+= 16
                        }
                        while i < s {
                            out[i] = a[j] * gradient(offset + i) + b[j] * h[i] + d[j]
                            i &+= 1
                        }
                    }
                }
            }
        }
    }
}
