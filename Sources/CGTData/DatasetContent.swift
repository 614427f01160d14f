/// What a dataset file will hold, with each split's features produced a block of rows at a
/// time as `DatasetWriter` writes them: from arrays in memory (`PreparedDataset.content`) or
/// read and converted from the source file (`NumPyPreparation.content`, for a `.npy` larger
/// than memory).
public struct DatasetContent {
    public var classNames: [String]
    public var featureShape: [Int]
    /// In file order: train, validation (when not empty), test.
    public var splits: [SplitContent]
    public var attributes: [String: DatasetAttributeValue]
    public var normalization: Normalization
    public var storage: FeatureStorage
    /// Bytes of values the writer asks for at a time (about; at least one chunk).
    var writeBlockBytes = defaultWriteBlockBytes
    static let defaultWriteBlockBytes = 4 << 20
    /// Run by the writer after the last split is filled, before the file is put in place: a
    /// streamed source checks there that it did not change while it was read.
    var afterLastRead: () throws -> Void = {}
}

/// One split of a `DatasetContent`.
public struct SplitContent {
    public let name: DatasetSplitName
    public let labels: [Int32]
    /// The row (or pixel) of the source each sample came from, if recorded.
    public let sourceIndex: [Int64]?
    public var count: Int { labels.count }
    /// Fills its buffer with the values to store for rows `range` of the split, `[rows] +
    /// featureShape` row-major: normalised for float32 storage, the source's bytes for uint8.
    let fill: (Range<Int>, UnsafeMutableBufferPointer<Float>) throws -> Void

    init(
        name: DatasetSplitName, labels: [Int32], sourceIndex: [Int64]?,
        fill: @escaping (Range<Int>, UnsafeMutableBufferPointer<Float>) throws -> Void
    ) {
        self.name = name
        self.labels = labels
        self.sourceIndex = sourceIndex
        self.fill = fill
    }

    /// A split whose features are in memory.
    init(_ split: DatasetSplit, sourceIndex: [Int64]?) {
        let width = split.featureCount
        let features = split.features
        self.init(name: split.name, labels: split.labels, sourceIndex: sourceIndex) { rows, output in
            features.withUnsafeBufferPointer { source in
                _ = output.update(fromContentsOf: source[(rows.lowerBound * width)..<(rows.upperBound * width)])
            }
        }
    }
}

extension PreparedDataset {
    /// The dataset as the writer takes it.
    public var content: DatasetContent {
        DatasetContent(
            classNames: classNames, featureShape: featureShape,
            splits: splits.map { SplitContent($0, sourceIndex: sourceIndices[$0.name]) }, attributes: attributes,
            normalization: normalization, storage: storage)
    }
}
