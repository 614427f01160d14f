/// The geometry of stride-1 2-D convolutions, shared by `Conv2D` and oneDNN's primitives
/// (`ConvolutionPrimitives`), which compute them.
public enum ConvolutionKernels {
    /// The input extent and the kernel of one convolution (stride 1).
    public struct Geometry: Hashable, Sendable {
        public var channels: Int
        public var height: Int
        public var width: Int
        public var kernelHeight: Int
        public var kernelWidth: Int
        public var paddingHeight: Int
        public var paddingWidth: Int

        /// - Parameters: padding defaults to `kernel / 2` on each side, which keeps H and W for odd kernels.
        public init(
            channels: Int, height: Int, width: Int, kernelHeight: Int, kernelWidth: Int,
            paddingHeight: Int? = nil, paddingWidth: Int? = nil
        ) {
            self.channels = channels
            self.height = height
            self.width = width
            self.kernelHeight = kernelHeight
            self.kernelWidth = kernelWidth
            self.paddingHeight = paddingHeight ?? kernelHeight / 2
            self.paddingWidth = paddingWidth ?? kernelWidth / 2
            precondition(
                channels > 0 && height > 0 && width > 0 && kernelHeight > 0 && kernelWidth > 0,
                "convolution geometry needs positive sizes: \(channels)x\(height)x\(width), kernel \(kernelHeight)x\(kernelWidth)"
            )
            precondition(
                self.paddingHeight >= 0 && self.paddingWidth >= 0 && outputHeight > 0 && outputWidth > 0,
                "kernel \(kernelHeight)x\(kernelWidth) with padding \(self.paddingHeight),\(self.paddingWidth) does not fit \(height)x\(width)"
            )
        }

        public var outputHeight: Int { height + 2 * paddingHeight - kernelHeight + 1 }
        public var outputWidth: Int { width + 2 * paddingWidth - kernelWidth + 1 }
        /// Hout * Wout.
        public var outputPositions: Int { outputHeight * outputWidth }
        /// C * kh * kw: the inputs under one kernel position, the columns of the flattened weight.
        public var patchSize: Int { channels * kernelHeight * kernelWidth }
        /// C * H * W: the values of one input sample.
        public var inputCount: Int { channels * height * width }
    }
}
