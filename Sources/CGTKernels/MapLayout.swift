/// How the values of one sample's `[C, H, W]` feature map lie in memory.
///
/// Shapes are always written `[C, H, W]`, as in PyTorch; only the order in memory differs,
/// as with PyTorch's `memory_format`. Parameters never depend on it: a convolution weight is
/// `[out, in, kh, kw]` whatever the maps' layout.
public enum MapLayout: Sendable, CaseIterable {
    /// `[C, H, W]`: each channel's plane contiguous (PyTorch's `contiguous_format`, the layout of
    /// datasets and of everything cgt reads or writes).
    case channelsFirst
    /// `[H, W, C]`: the channels of each position contiguous (PyTorch's `channels_last`). The CNN
    /// trunk keeps its maps so: oneDNN's AVX-512 convolutions read and write it directly, and
    /// BatchNorm, ReLU and pooling vectorise across channels, so no reorder runs between layers.
    case channelsLast
    /// `[C / 16, H, W, 16]`: channels-last within blocks of 16 channels (oneDNN's `nChw16c`), for
    /// channel counts that are multiples of 16. oneDNN's AVX-512 convolutions run fastest in it,
    /// and every other layer treats each block as a 16-channel channels-last map.
    case blocked16

    /// The channels of one block of `blocked16`.
    public static let blockSize = 16

    /// Whether a map of `channels` channels can have this layout.
    public func admits(channels: Int) -> Bool { self != .blocked16 || channels % MapLayout.blockSize == 0 }

    /// The layout the CNN keeps its maps of `channels` channels in: blocked where the count
    /// allows, channels-last otherwise.
    public static func fastest(channels: Int) -> MapLayout { channels % blockSize == 0 ? .blocked16 : .channelsLast }

    /// The memory offset of value (c, y, x) of a `[channels, height, width]` map.
    @inlinable
    public func offset(channel c: Int, y: Int, x: Int, channels: Int, height: Int, width: Int) -> Int {
        switch self {
        case .channelsFirst: (c * height + y) * width + x
        case .channelsLast: (y * width + x) * channels + c
        case .blocked16:
            (((c / MapLayout.blockSize) * height + y) * width + x) * MapLayout.blockSize + c % MapLayout.blockSize
        }
    }
}
