/// A per-channel affine map applied to features before they are stored:
/// x_stored = (x_source - offset[c]) / scale[c].
///
/// A channel is an index of the first feature axis (a band of a spectrum, a column of a CSV,
/// a channel of an image), pooled over the other feature axes (an image's pixels). Statistics
/// are fitted on the training split only, so nothing about the test samples leaks into the
/// training data; the same map is applied to every split and stored in the file, so a user
/// can undo it (x_source = x_stored * scale + offset) or apply it to new data.
public struct Normalization: Equatable, Sendable {
    /// How `offset` and `scale` were chosen.
    public enum Method: String, CaseIterable, Sendable {
        /// Identity (offset 0, scale 1).
        case none
        /// offset = min, scale = max - min over the training split: training values land in [0, 1] (the paper's choice for spectra).
        case minmax
        /// offset = mean, scale = population standard deviation over the training split.
        case zscore
        /// Given constants, not fitted (Fashion-MNIST's mean 0.286 and std 0.353 of pixels scaled to [0, 1]).
        case fixed
    }

    public let method: Method
    public let offset: [Double]
    public let scale: [Double]
    /// Where the constants came from, for the file's attributes and `cgt inspect`.
    public let statistics: String
    /// The fitted statistics by name ("min", "max", "mean", "std"), before a constant
    /// channel's scale was replaced by 1.
    public let fitted: [String: [Double]]

    public init(method: Method, offset: [Double], scale: [Double], statistics: String, fitted: [String: [Double]] = [:])
    {
        precondition(
            offset.count == scale.count && scale.allSatisfy { $0 > 0 && $0.isFinite },
            "normalization needs positive finite scales, one per offset")
        self.method = method
        self.offset = offset
        self.scale = scale
        self.statistics = statistics
        self.fitted = fitted
    }

    /// Fits `method` (not `.fixed`) on `features`, `[samples] + featureShape` row-major.
    ///
    /// A constant channel gets scale 1 (it becomes 0 everywhere) rather than a division by zero.
    public static func fit(_ method: Method, features: [Float], featureShape: [Int]) -> Normalization {
        fit(method, featureShape: featureShape) { body in features.withUnsafeBufferPointer { body($0) } }
    }

    /// Fits `method` (not `.fixed`) on rows that `visit` hands over a block at a time.
    ///
    /// The one implementation of fitting, for features in memory and for features streamed from
    /// a file: each call of `visit` must pass every row, in order, as consecutive blocks of whole
    /// rows (`[rows] + featureShape` row-major). The statistics are accumulated sample by sample
    /// in that order, so how the rows are cut into blocks changes no bit of the result. `.zscore`
    /// calls `visit` twice (means, then squared deviations from them); the others at most once.
    /// - Complexity: one or two reads of every value.
    public static func fit(
        _ method: Method, featureShape: [Int],
        rows visit: ((UnsafeBufferPointer<Float>) -> Void) throws -> Void
    ) rethrows -> Normalization {
        let channels = featureShape[0]
        let inner = featureShape.dropFirst().reduce(1, *)
        let width = channels * inner
        switch method {
        case .none:
            return Normalization(
                method: .none, offset: [Double](repeating: 0, count: channels),
                scale: [Double](repeating: 1, count: channels), statistics: "identity")
        case .fixed:
            preconditionFailure("fixed normalization has given constants; use init")
        case .minmax:
            var low = [Float](repeating: .infinity, count: channels)
            var high = [Float](repeating: -.infinity, count: channels)
            try visit { x in
                let samples = width == 0 ? 0 : x.count / width
                for sample in 0..<samples {
                    for channel in 0..<channels {
                        let start = sample * width + channel * inner
                        for value in x[start..<(start + inner)] {
                            low[channel] = min(low[channel], value)
                            high[channel] = max(high[channel], value)
                        }
                    }
                }
            }
            let offset = low.map { Double($0) }
            let top = high.map { Double($0) }
            let scale = zip(offset, top).map { $1 - $0 }.map { $0 > 0 ? $0 : 1 }
            return Normalization(
                method: .minmax, offset: offset, scale: scale, statistics: "train split",
                fitted: ["min": offset, "max": top])
        case .zscore:
            var samples = 0
            func channelSums(
                _ visit: ((UnsafeBufferPointer<Float>) -> Void) throws -> Void, deviationsFrom mean: [Double]?
            ) rethrows -> [Double] {
                var sums = [Double](repeating: 0, count: channels)
                samples = 0
                try visit { x in
                    let blockSamples = width == 0 ? 0 : x.count / width
                    samples += blockSamples
                    for sample in 0..<blockSamples {
                        for channel in 0..<channels {
                            let start = sample * width + channel * inner
                            var total = 0.0
                            if let mean {
                                for value in x[start..<(start + inner)] {
                                    let deviation = Double(value) - mean[channel]
                                    total += deviation * deviation
                                }
                            } else {
                                for value in x[start..<(start + inner)] { total += Double(value) }
                            }
                            sums[channel] += total
                        }
                    }
                }
                return sums
            }
            let sums = try channelSums(visit, deviationsFrom: nil)
            let perChannel = Double(samples * inner)
            let mean = sums.map { $0 / perChannel }
            let variance = try channelSums(visit, deviationsFrom: mean).map { $0 / perChannel }
            let std = variance.map { $0.squareRoot() }
            return Normalization(
                method: .zscore, offset: mean, scale: std.map { $0 > 0 ? $0 : 1 }, statistics: "train split",
                fitted: ["mean": mean, "std": std])
        }
    }

    /// Applies the map in place to `features`, `[samples] + featureShape` row-major.
    public func apply(to features: inout [Float], featureShape: [Int]) {
        features.withUnsafeMutableBufferPointer { apply(to: $0, featureShape: featureShape) }
    }

    /// Applies the map in place to `features`, `[samples] + featureShape` row-major.
    ///
    /// Each value is computed in double precision and rounded once, so the reader of a uint8
    /// file gets bitwise the values `cgt prepare` would have stored as float32.
    public func apply(to features: UnsafeMutableBufferPointer<Float>, featureShape: [Int]) {
        guard method != .none else { return }
        let channels = featureShape[0]
        let inner = featureShape.dropFirst().reduce(1, *)
        precondition(channels == offset.count, "normalization has \(offset.count) channels, features \(channels)")
        let width = channels * inner
        guard width > 0 else { return }
        let samples = features.count / width
        for sample in 0..<samples {
            for channel in 0..<channels {
                let start = sample * width + channel * inner
                let shift = offset[channel]
                let divisor = scale[channel]
                for i in start..<(start + inner) { features[i] = Float((Double(features[i]) - shift) / divisor) }
            }
        }
    }

    /// The file attributes that record this map (documented in `hdf5_data/README.md`).
    public var attributes: [String: DatasetAttributeValue] {
        var result: [String: DatasetAttributeValue] = [
            "normalization": .string(method.rawValue),
            DatasetLayout.Attribute.normalizationOffset: .doubles(offset),
            DatasetLayout.Attribute.normalizationScale: .doubles(scale),
            "normalization_statistics": .string(statistics),
        ]
        for (name, values) in fitted { result["normalization_\(name)"] = .doubles(values) }
        return result
    }
}
