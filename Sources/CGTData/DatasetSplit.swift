/// The samples of one split (or of one rank's shard of it), in memory.
public struct DatasetSplit: Sendable {
    public let name: DatasetSplitName
    /// `[count, featureCount]` row-major.
    public var features: [Float]
    public var labels: [Int32]
    /// The row of each sample in the file's split: keys dropout masks and shuffles, so they do
    /// not depend on how the split was sharded.
    public var sampleIDs: [Int64]
    public let featureShape: [Int]

    public init(name: DatasetSplitName, features: [Float], labels: [Int32], sampleIDs: [Int64], featureShape: [Int]) {
        precondition(
            labels.count == sampleIDs.count && features.count == labels.count * featureShape.reduce(1, *),
            "split \(name): \(features.count) feature values, \(labels.count) labels, \(sampleIDs.count) ids for shape \(featureShape)"
        )
        self.name = name
        self.features = features
        self.labels = labels
        self.sampleIDs = sampleIDs
        self.featureShape = featureShape
    }

    public var count: Int { labels.count }
    public var featureCount: Int { featureShape.reduce(1, *) }

    /// Copies the samples at `positions` into contiguous batch buffers.
    public func gather(
        _ positions: ArraySlice<Int>, features x: UnsafeMutableBufferPointer<Float>,
        labels y: UnsafeMutableBufferPointer<Int32>, sampleIDs ids: UnsafeMutableBufferPointer<Int64>
    ) {
        let width = featureCount
        precondition(
            x.count >= positions.count * width && y.count >= positions.count && ids.count >= positions.count,
            "batch buffers too small for \(positions.count) samples")
        features.withUnsafeBufferPointer { source in
            for (row, position) in positions.enumerated() {
                (x.baseAddress! + row * width).update(from: source.baseAddress! + position * width, count: width)
                y[row] = labels[position]
                ids[row] = sampleIDs[position]
            }
        }
    }
}
