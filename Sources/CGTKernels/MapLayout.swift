/// How the values of one sample's `[C, H, W]` feature map lie in memory.
///
/// Shapes are always written `[C, H, W]`, as in PyTorch; only the order in memory differs,
/// as with PyTorch's `memory_format`. Parameters never depend on it: a convolution weight is
/// `[out, in, kh, kw]` whatever the maps' layout. Which layout a network's maps take on this
/// CPU is decided in one place, `MapLayoutChoice`.
public enum MapLayout: Sendable, CaseIterable {
    /// `[C, H, W]`: each channel's plane contiguous (PyTorch's `contiguous_format`, the layout of
    /// datasets and of everything cgt reads or writes).
    case channelsFirst
    /// `[H, W, C]`: the channels of each position contiguous (PyTorch's `channels_last`, oneDNN's
    /// `nhwc`). BatchNorm, ReLU and pooling vectorise across channels.
    case channelsLast
    /// `[C / 8, H, W, 8]`: channels-last within blocks of 8 channels (oneDNN's `nChw8c`), one
    /// AVX2 register per position: the layout of oneDNN's AVX2 convolution kernels.
    case blocked8
    /// `[C / 16, H, W, 16]`: channels-last within blocks of 16 channels (oneDNN's `nChw16c`), one
    /// AVX-512 register per position: the layout of oneDNN's AVX-512 convolution kernels, which
    /// on AVX2 has no JIT kernel at all (oneDNN falls back to its reference code).
    case blocked16

    /// The channels of one block of a blocked layout; nil for `channelsFirst` and `channelsLast`.
    /// Every kernel that walks blocked maps treats each block as a channels-last map of this
    /// many channels.
    @inlinable
    public var blockWidth: Int? {
        switch self {
        case .channelsFirst, .channelsLast: nil
        case .blocked8: 8
        case .blocked16: 16
        }
    }

    /// Whether a map of `channels` channels can have this layout: a blocked one needs whole blocks.
    public func admits(channels: Int) -> Bool { blockWidth.map { channels % $0 == 0 } ?? true }

    /// The memory offset of value (c, y, x) of a `[channels, height, width]` map.
    @inlinable
    public func offset(channel c: Int, y: Int, x: Int, channels: Int, height: Int, width: Int) -> Int {
        switch self {
        case .channelsFirst: (c * height + y) * width + x
        case .channelsLast: (y * width + x) * channels + c
        case .blocked8, .blocked16:
            (((c / blockWidth!) * height + y) * width + x) * blockWidth! + c % blockWidth!
        }
    }

    /// A batch of maps in this layout as channels-last maps for the kernels that walk them:
    /// each block of a blocked map is a channels-last map of `blockWidth` channels.
    @inlinable
    public func channelsLastMaps(batch: Int, channels: Int) -> (maps: Int, channels: Int) {
        guard let width = blockWidth else { return (batch, channels) }
        return (batch * channels / width, width)
    }
}
