/// Random crop (with zero padding) and horizontal flip of `[channels, height, width]` images.
///
/// Each image's shift and flip are a pure function of (key, sample id), like the dropout
/// masks, so a sample is augmented alike whatever rank or batch it lands in.
public enum ImageAugmentation {
    /// The shift (dy, dx) in [-padding, padding] and the flip of one sample.
    @inlinable
    public static func draw(key: UInt64, sampleID: Int64, padding: Int, flip: Bool) -> (dy: Int, dx: Int, flip: Bool) {
        let bits = DropoutKernels.mix64(key ^ DropoutKernels.mix64(UInt64(bitPattern: sampleID)))
        let span = UInt64(2 * padding + 1)
        let dy = padding > 0 ? Int(bits % span) - padding : 0
        let dx = padding > 0 ? Int((bits >> 16) % span) - padding : 0
        return (dy, dx, flip && (bits >> 63) == 1)
    }

    /// out[c, y, x] = in[c, y + dy, x' + dx] with x' = x, or width - 1 - x when flipped; zero
    /// where that falls outside the image. `image` and `output` must not overlap.
    @inlinable
    public static func shiftAndFlip(
        _ image: UnsafePointer<Float>, into output: UnsafeMutablePointer<Float>,
        channels: Int, height: Int, width: Int, dy: Int, dx: Int, flip: Bool
    ) {
        for c in 0..<channels {
            let plane = image + c * height * width
            let target = output + c * height * width
            for y in 0..<height {
                let row = target + y * width
                let sourceY = y + dy
                guard sourceY >= 0 && sourceY < height else {
                    row.update(repeating: 0, count: width)
                    continue
                }
                let source = plane + sourceY * width
                for x in 0..<width {
                    let sourceX = (flip ? width - 1 - x : x) + dx
                    row[x] = sourceX >= 0 && sourceX < width ? source[sourceX] : 0
                }
            }
        }
    }
}
