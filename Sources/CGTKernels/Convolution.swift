/// im2col and col2im for stride-1 2-D convolutions over `[N, C, H, W]` tensors, and the
/// reshuffles around them, so that a convolution of several samples is one `cblas_sgemm`.
///
/// The column matrix of G samples is `[C * kh * kw, G * Hout * Wout]`, row-major: row
/// (c, i, j) holds, for every sample and output position, the input value under kernel tap
/// (i, j) of channel c, or 0 where the tap falls into the zero padding. With the weight stored
/// `[Cout, C * kh * kw]` (PyTorch's `[Cout, C, kh, kw]`, flattened), weight x columns is the
/// output in channel-major order `[Cout, G * Hout * Wout]`; for G = 1 that is already the
/// sample's `[Cout, Hout, Wout]` slice.
public enum ConvolutionKernels {
    /// The input extent and the kernel of one convolution (stride 1).
    public struct Geometry: Equatable, Sendable {
        public var channels: Int
        public var height: Int
        public var width: Int
        public var kernelHeight: Int
        public var kernelWidth: Int
        public var paddingHeight: Int
        public var paddingWidth: Int

        /// - Parameters: padding defaults to `kernel / 2` on each side, which keeps H and W for odd kernels.
        public init(channels: Int, height: Int, width: Int, kernelHeight: Int, kernelWidth: Int,
                    paddingHeight: Int? = nil, paddingWidth: Int? = nil) {
            self.channels = channels
            self.height = height
            self.width = width
            self.kernelHeight = kernelHeight
            self.kernelWidth = kernelWidth
            self.paddingHeight = paddingHeight ?? kernelHeight / 2
            self.paddingWidth = paddingWidth ?? kernelWidth / 2
            precondition(channels > 0 && height > 0 && width > 0 && kernelHeight > 0 && kernelWidth > 0,
                         "convolution geometry needs positive sizes: \(channels)x\(height)x\(width), kernel \(kernelHeight)x\(kernelWidth)")
            precondition(self.paddingHeight >= 0 && self.paddingWidth >= 0 && outputHeight > 0 && outputWidth > 0,
                         "kernel \(kernelHeight)x\(kernelWidth) with padding \(self.paddingHeight),\(self.paddingWidth) does not fit \(height)x\(width)")
        }

        public var outputHeight: Int { height + 2 * paddingHeight - kernelHeight + 1 }
        public var outputWidth: Int { width + 2 * paddingWidth - kernelWidth + 1 }
        /// Hout * Wout.
        public var outputPositions: Int { outputHeight * outputWidth }
        /// C * kh * kw: the rows of the column matrix, the columns of the flattened weight.
        public var patchSize: Int { channels * kernelHeight * kernelWidth }
        /// C * H * W: the values of one input sample.
        public var inputCount: Int { channels * height * width }
    }

    /// Fills the column matrix `[patchSize, samples * outputPositions]` of `samples` consecutive inputs.
    ///
    /// Each (row, sample, output row) is one contiguous copy of the input row it reads, with
    /// zeros where the kernel tap lies in the padding. The rows are short (28, 14 and 7 values in
    /// the paper CNN), so they are copied inline rather than through memcpy and memset calls.
    @inlinable
    public static func im2col(
        _ input: UnsafeBufferPointer<Float>, geometry g: Geometry, samples: Int, into columns: UnsafeMutableBufferPointer<Float>
    ) {
        let positions = g.outputPositions, stride = samples * positions
        precondition(input.count >= samples * g.inputCount, "im2col: input holds \(input.count) values, \(samples) samples need \(samples * g.inputCount)")
        precondition(columns.count >= g.patchSize * stride, "im2col: columns hold \(columns.count) values, need \(g.patchSize * stride)")
        let x = input.baseAddress!, col = columns.baseAddress!
        let h = g.height, w = g.width, plane = h * w, oh = g.outputHeight, ow = g.outputWidth
        for n in 0..<samples {
            var row = 0
            for c in 0..<g.channels {
                let source = x + (n * g.channels + c) * plane
                for ki in 0..<g.kernelHeight {
                    let dy = ki - g.paddingHeight
                    for kj in 0..<g.kernelWidth {
                        let dx = kj - g.paddingWidth
                        // Output columns whose tap x + dx lies inside the input row.
                        let first = min(max(0, -dx), ow), end = max(min(ow, w - dx), first)
                        var out = col + row * stride + n * positions
                        for y in 0..<oh {
                            let iy = y + dy
                            if iy < 0 || iy >= h || first == end {
                                ShortRows.fill(out, count: ow)
                            } else {
                                ShortRows.fill(out, count: first)
                                ShortRows.copy(source + iy * w + first + dx, to: out + first, count: end - first)
                                ShortRows.fill(out + end, count: ow - end)
                            }
                            out += ow
                        }
                        row &+= 1
                    }
                }
            }
        }
    }

    /// The adjoint of `im2col`: sums every column entry back onto the input value it was copied
    /// from, overwriting `inputGradient` (`[samples, C, H, W]`); padding entries are dropped.
    @inlinable
    public static func col2im(
        _ columns: UnsafeBufferPointer<Float>, geometry g: Geometry, samples: Int, into inputGradient: UnsafeMutableBufferPointer<Float>
    ) {
        let positions = g.outputPositions, stride = samples * positions
        precondition(inputGradient.count >= samples * g.inputCount, "col2im: gradient holds \(inputGradient.count) values, \(samples) samples need \(samples * g.inputCount)")
        precondition(columns.count >= g.patchSize * stride, "col2im: columns hold \(columns.count) values, need \(g.patchSize * stride)")
        let dx = inputGradient.baseAddress!, col = columns.baseAddress!
        let h = g.height, w = g.width, plane = h * w, oh = g.outputHeight, ow = g.outputWidth
        dx.update(repeating: 0, count: samples * g.inputCount)
        for n in 0..<samples {
            var row = 0
            for c in 0..<g.channels {
                let target = dx + (n * g.channels + c) * plane
                for ki in 0..<g.kernelHeight {
                    let dy = ki - g.paddingHeight
                    // Output rows whose tap y + dy lies inside the input.
                    let firstRow = min(max(0, -dy), oh), endRow = max(min(oh, h - dy), firstRow)
                    for kj in 0..<g.kernelWidth {
                        let shift = kj - g.paddingWidth
                        let first = min(max(0, -shift), ow), end = max(min(ow, w - shift), first)
                        let base = col + row * stride + n * positions
                        if first < end {
                            for y in firstRow..<endRow {
                                accumulate(UnsafePointer(base + y * ow + first), into: target + (y + dy) * w + first + shift, count: end - first)
                            }
                        }
                        row &+= 1
                    }
                }
            }
        }
    }

    /// dst[i] += src[i] for i < count.
    @inlinable @inline(__always)
    internal static func accumulate(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, count: Int) {
        let full = vectorizedPrefix(count)
        var i = 0
        while i < full {
            storeVector(loadVector(dst + i) + loadVector(src + i), dst + i)
            i &+= 16
        }
        while i < count { dst[i] += src[i]; i &+= 1 }
    }

    /// output[n, o, p] = source[o, n * positions + p] + bias[o]: a channel-major product of
    /// several samples back into the batch's `[N, Cout, Hout, Wout]` layout.
    @inlinable
    public static func channelMajorToSampleMajor(
        _ source: UnsafeBufferPointer<Float>, channels: Int, samples: Int, positions: Int,
        bias: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>
    ) {
        let count = channels * samples * positions
        precondition(source.count >= count && output.count >= count && bias.count >= channels,
                     "channelMajorToSampleMajor: buffers do not fit \(channels) x \(samples) x \(positions)")
        let src = source.baseAddress!, dst = output.baseAddress!
        for n in 0..<samples {
            for o in 0..<channels {
                let from = src + (o * samples + n) * positions, to = dst + (n * channels + o) * positions
                let b = bias[o]
                let full = vectorizedPrefix(positions)
                var i = 0
                while i < full {
                    storeVector(loadVector(from + i) + b, to + i)
                    i &+= 16
                }
                while i < positions { to[i] = from[i] + b; i &+= 1 }
            }
        }
    }

    /// output[o, n * positions + p] = source[n, o, p]: a batch's output gradient in the
    /// channel-major order of the column products.
    @inlinable
    public static func sampleMajorToChannelMajor(
        _ source: UnsafeBufferPointer<Float>, channels: Int, samples: Int, positions: Int,
        into output: UnsafeMutableBufferPointer<Float>
    ) {
        let count = channels * samples * positions
        precondition(source.count >= count && output.count >= count,
                     "sampleMajorToChannelMajor: buffers do not fit \(channels) x \(samples) x \(positions)")
        let src = source.baseAddress!, dst = output.baseAddress!
        for n in 0..<samples {
            for o in 0..<channels {
                (dst + (o * samples + n) * positions).update(from: src + (n * channels + o) * positions, count: positions)
            }
        }
    }

    /// y[n, c, p] += bias[c] over `[samples, channels, positions]`.
    @inlinable
    public static func addChannelBias(
        _ bias: UnsafeBufferPointer<Float>, to y: UnsafeMutableBufferPointer<Float>, samples: Int, positions: Int
    ) {
        let channels = bias.count
        precondition(y.count >= samples * channels * positions, "addChannelBias: output holds \(y.count) values, needs \(samples * channels * positions)")
        let out = y.baseAddress!
        let full = vectorizedPrefix(positions)
        for n in 0..<samples {
            for c in 0..<channels {
                let plane = out + (n * channels + c) * positions
                let b = bias[c]
                var i = 0
                while i < full {
                    storeVector(loadVector(plane + i) + b, plane + i)
                    i &+= 16
                }
                while i < positions { plane[i] += b; i &+= 1 }
            }
        }
    }

    /// sums[c] = sum over samples and positions of x[n, c, p] (a convolution's bias gradient), overwriting `sums`.
    @inlinable
    public static func channelSums(
        _ x: UnsafeBufferPointer<Float>, samples: Int, positions: Int, into sums: UnsafeMutableBufferPointer<Float>
    ) {
        let channels = sums.count
        precondition(x.count >= samples * channels * positions, "channelSums: input holds \(x.count) values, needs \(samples * channels * positions)")
        let src = x.baseAddress!
        sums.update(repeating: 0)
        for n in 0..<samples {
            for c in 0..<channels {
                sums[c] += Reductions.sum(UnsafeBufferPointer(start: src + (n * channels + c) * positions, count: positions))
            }
        }
    }
}
