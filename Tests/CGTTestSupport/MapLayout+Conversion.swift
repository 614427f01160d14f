import CGTKernels

extension MapLayout {
    /// `values` (whole samples of `[channels, height, width]` maps in this layout) in `target`'s layout.
    public func converted(_ values: [Float], to target: MapLayout, channels: Int, height: Int, width: Int) -> [Float] {
        guard target != self else { return values }
        precondition(
            admits(channels: channels) && target.admits(channels: channels), "\(channels) channels fill no whole blocks"
        )
        let sample = channels * height * width
        precondition(
            values.count % sample == 0, "\(values.count) values are not whole \(channels)x\(height)x\(width) maps")
        var result = [Float](repeating: 0, count: values.count)
        for start in stride(from: 0, to: values.count, by: sample) {
            for c in 0..<channels {
                for y in 0..<height {
                    for x in 0..<width {
                        result[
                            start
                                + target.offset(
                                    channel: c, y: y, x: x, channels: channels, height: height, width: width)] =
                            values[
                                start + offset(channel: c, y: y, x: x, channels: channels, height: height, width: width)
                            ]
                    }
                }
            }
        }
        return result
    }
}
