import CGTFiles
import CGTHDF5

/// A file attribute of a dataset file: provenance, normalisation, split and class details.
public enum DatasetAttributeValue: Equatable, Sendable {
    case string(String)
    case strings([String])
    case int(Int)
    case ints([Int])
    case double(Double)
    case doubles([Double])
}

/// Writes a dataset file in `DatasetLayout`, atomically: readers never see a half-written file.
public enum DatasetWriter {
    /// Rows per chunk of a split's features: the one rule `cgt prepare` and `cgt synth` write
    /// by, and what `training.shuffle: blocks` deals out as its blocks.
    ///
    /// About 256 KiB before compression (large enough for deflate to work well and for
    /// sequential reads to be fast, small enough that a rank reading the rows of its batches
    /// does not decompress much more than it needs), but fewer rows where that would leave the
    /// split fewer than `minimumChunksPerSplit` chunks, down to `minimumChunkBytes`. A rank's
    /// piece in `blocks` mode decompresses up to two chunks beyond its 1/R of the split, so 64
    /// chunks keep 4 ranks under 0.25 + 2/64 of the split each. A chunk holds whole samples (all
    /// of every axis but the first): a training read takes whole rows.
    /// - Parameters:
    ///   - sampleCount: the split's samples; nil for the 256 KiB rule alone.
    ///   - featureCount: stored values per sample.
    ///   - elementSize: bytes per stored value.
    public static func chunkRows(sampleCount: Int? = nil, featureCount: Int, elementSize: Int = 4) -> Int {
        let rowBytes = max(1, elementSize) * max(1, featureCount)
        let target = max(1, min(65_536, targetChunkBytes / rowBytes))
        guard let sampleCount else { return target }
        let floor = max(1, (minimumChunkBytes + rowBytes - 1) / rowBytes)
        let spread = (sampleCount + minimumChunksPerSplit - 1) / minimumChunksPerSplit
        return max(1, min(sampleCount, target, max(floor, spread)))
    }

    /// Bytes of features per chunk (before compression) where the split is large enough.
    public static let targetChunkBytes = 256 * 1024
    /// The fewest bytes per chunk, however few chunks that leaves a small split: deflate's
    /// 32 KiB window twice over, so that compression still finds its redundancy.
    public static let minimumChunkBytes = 64 * 1024
    /// The chunks a split is cut into at least, as long as they hold `minimumChunkBytes`.
    public static let minimumChunksPerSplit = 64

    /// - Parameters:
    ///   - splits: the splits to write; `train` and `test` are required.
    ///   - stringAttributes, numberAttributes: extra file attributes (provenance, normalisation).
    public static func write(
        to path: String, classNames: [String], featureShape: [Int], splits: [DatasetSplit],
        stringAttributes: [String: String] = [:], numberAttributes: [String: [Double]] = [:],
        compression: DatasetCompression = .gzip
    ) throws {
        var attributes = stringAttributes.mapValues { DatasetAttributeValue.string($0) }
        for (key, value) in numberAttributes { attributes[key] = .doubles(value) }
        try write(
            to: path, classNames: classNames, featureShape: featureShape, splits: splits, attributes: attributes,
            compression: compression)
    }

    /// - Parameters:
    ///   - splits: the splits to write; `train` and `test` are required, `validation` optional.
    ///   - attributes: extra file attributes (provenance, normalisation, splitting).
    ///   - sourceIndices: per split name, the row (or pixel) of the source each sample came
    ///     from, written as `/<split>/source_index`.
    ///   - storage: `uint8` stores each feature as a byte (the splits must hold integers in
    ///     0...255, and `attributes` the normalisation the reader applies).
    ///   - compression: shuffle + deflate level 4 on every chunk, or none.
    public static func write(
        to path: String, classNames: [String], featureShape: [Int], splits: [DatasetSplit],
        attributes: [String: DatasetAttributeValue], sourceIndices: [DatasetSplitName: [Int64]] = [:],
        storage: FeatureStorage = .float32, compression: DatasetCompression = .gzip
    ) throws {
        precondition(splits.allSatisfy { $0.featureShape == featureShape }, "splits disagree on the feature shape")
        try write(
            to: path, classNames: classNames, featureShape: featureShape,
            splits: splits.map { SplitContent($0, sourceIndex: sourceIndices[$0.name]) }, attributes: attributes,
            storage: storage, blockBytes: DatasetContent.defaultWriteBlockBytes, compression: compression)
    }

    /// Writes `content`, each split's features a block of whole chunks at a time (a stop
    /// signal, `SignalStop`, is heard between blocks); a failure names `path` (not the temporary
    /// file, `AtomicFile`) and leaves no file behind.
    ///
    /// - Complexity: memory for one block of features (`content.writeBlockBytes`, at least one
    ///   chunk) besides the labels and source indices.
    public static func write(_ content: DatasetContent, to path: String, compression: DatasetCompression = .gzip)
        throws
    {
        try write(
            to: path, classNames: content.classNames, featureShape: content.featureShape, splits: content.splits,
            attributes: content.attributes, storage: content.storage, blockBytes: content.writeBlockBytes,
            compression: compression, afterLastRead: content.afterLastRead)
    }

    private static func write(
        to path: String, classNames: [String], featureShape: [Int], splits: [SplitContent],
        attributes: [String: DatasetAttributeValue], storage: FeatureStorage, blockBytes: Int,
        compression: DatasetCompression, afterLastRead: () throws -> Void = {}
    ) throws {
        let normalisation = [DatasetLayout.Attribute.normalizationOffset, DatasetLayout.Attribute.normalizationScale]
        precondition(
            storage == .float32 || normalisation.allSatisfy { attributes[$0] != nil },
            "uint8 storage needs the normalisation attributes the reader applies")
        let deflate = compression.deflateLevel
        let shuffle = compression != .none
        try writeHDF5Atomically(to: path) { file in
            let root = file.root
            try root.setAttribute(DatasetLayout.Attribute.layoutVersion, storage.layoutVersion)
            try root.setAttribute(DatasetLayout.Attribute.numClasses, classNames.count)
            try root.setAttribute(DatasetLayout.Attribute.classNames, classNames)
            try root.setAttribute(DatasetLayout.Attribute.featureShape, featureShape)
            for (key, value) in attributes.sorted(by: { $0.key < $1.key }) {
                switch value {
                case .string(let text): try root.setAttribute(key, text)
                case .strings(let texts): try root.setAttribute(key, texts)
                case .int(let number): try root.setAttribute(key, number)
                case .ints(let numbers): try root.setAttribute(key, numbers)
                case .double(let number): try root.setAttribute(key, number)
                case .doubles(let numbers): try root.setAttribute(key, numbers)
                }
            }
            for split in splits {
                let rows = chunkRows(
                    sampleCount: split.count, featureCount: featureShape.reduce(1, *), elementSize: storage.elementSize)
                let group = try root.createGroup(split.name.rawValue)
                let features = try group.createDataset(
                    DatasetLayout.features, type: storage == .uint8 ? .uint8 : .float32,
                    shape: [split.count] + featureShape, chunkRows: rows, deflateLevel: deflate,
                    shuffle: shuffle && storage == .float32)
                try writeRows(
                    of: split, to: features, storage: storage, chunkRows: rows, blockBytes: blockBytes,
                    path: path)
                try group.writeDataset(
                    DatasetLayout.labels, split.labels, shape: [split.count],
                    chunkRows: min(65_536, split.count), deflateLevel: deflate, shuffle: shuffle)
                if let indices = split.sourceIndex {
                    precondition(
                        indices.count == split.count,
                        "split \(split.name): \(indices.count) source indices for \(split.count) samples")
                    try group.writeDataset(
                        DatasetLayout.sourceIndex, indices, shape: [split.count],
                        chunkRows: min(32_768, split.count), deflateLevel: deflate, shuffle: shuffle)
                }
                var counts = [Int](repeating: 0, count: classNames.count)
                for label in split.labels where label >= 0 && Int(label) < counts.count { counts[Int(label)] += 1 }
                try group.setAttribute(DatasetLayout.Attribute.classCounts, counts)
            }
            try afterLastRead()
        }
    }

    /// Writes the features of `split` into the rows of `dataset` a block of whole chunks (about
    /// `blockBytes` of source values) at a time, so that a stop signal (`SignalStop`) is heard
    /// between blocks, not after the split.
    private static func writeRows(
        of split: SplitContent, to dataset: HDF5Dataset, storage: FeatureStorage, chunkRows: Int, blockBytes: Int,
        path: String
    ) throws {
        let rows = split.count
        let width = dataset.rowElementCount
        let blockRows = min(
            max(1, rows), chunkRows * max(1, blockBytes / max(1, chunkRows * width * MemoryLayout<Float>.size)))
        let values = UnsafeMutableBufferPointer<Float>.allocate(capacity: blockRows * width)
        defer { values.deallocate() }
        let bytes = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: storage == .uint8 ? blockRows * width : 0)
        defer { bytes.deallocate() }
        guard rows > 0, width > 0 else {
            switch storage {
            case .float32: return try dataset.write(UnsafeBufferPointer(rebasing: values[0..<0]))
            case .uint8: return try dataset.write(UnsafeBufferPointer(rebasing: bytes[0..<0]))
            }
        }
        for start in stride(from: 0, to: rows, by: blockRows) {
            let end = min(rows, start + blockRows)
            let block = UnsafeMutableBufferPointer(rebasing: values[0..<((end - start) * width)])
            try split.fill(start..<end, block)
            switch storage {
            case .float32:
                try dataset.write(UnsafeBufferPointer(block), rows: start..<end)
            case .uint8:
                for i in block.indices {
                    let value = block[i]
                    precondition(value >= 0 && value <= 255, "split \(split.name): \(value) is not a byte")
                    bytes[i] = UInt8(value)
                }
                try dataset.write(UnsafeBufferPointer(rebasing: bytes[0..<block.count]), rows: start..<end)
            }
            try SignalStop.check(writing: path)
        }
    }

    /// Writes a prepared dataset in its storage; a failure names `path` (not the temporary
    /// file, `AtomicFile`) and leaves no file behind.
    public static func write(
        _ dataset: PreparedDataset, to path: String, compression: DatasetCompression = .gzip
    ) throws {
        try write(dataset.content, to: path, compression: compression)
    }
}
