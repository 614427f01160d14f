import CGTHDF5

/// Writes a dataset file in `DatasetLayout`, atomically: readers never see a half-written file.
public enum DatasetWriter {
    /// Rows per chunk so that a chunk holds about 256 KiB: large enough for deflate to work
    /// well and for sequential reads to be fast, small enough that a shard read or a
    /// random-access read does not decompress much more than it needs.
    public static func chunkRows(featureCount: Int) -> Int {
        max(1, min(65_536, (256 * 1024) / (4 * max(1, featureCount))))
    }

    /// - Parameters:
    ///   - splits: the splits to write; `train` and `test` are required.
    ///   - stringAttributes, numberAttributes: extra file attributes (provenance, normalisation).
    public static func write(
        to path: String, classNames: [String], featureShape: [Int], splits: [DatasetSplit],
        stringAttributes: [String: String] = [:], numberAttributes: [String: [Double]] = [:]
    ) throws {
        precondition(splits.allSatisfy { $0.featureShape == featureShape }, "splits disagree on the feature shape")
        try writeHDF5Atomically(to: path) { file in
            let root = file.root
            try root.setAttribute("layout_version", DatasetLayout.version)
            try root.setAttribute("num_classes", classNames.count)
            try root.setAttribute("class_names", classNames)
            try root.setAttribute("feature_shape", featureShape)
            for (key, value) in stringAttributes.sorted(by: { $0.key < $1.key }) { try root.setAttribute(key, value) }
            for (key, value) in numberAttributes.sorted(by: { $0.key < $1.key }) { try root.setAttribute(key, value) }
            let rows = chunkRows(featureCount: featureShape.reduce(1, *))
            for split in splits {
                let group = try root.createGroup(split.name)
                try group.writeDataset(DatasetLayout.features, split.features, shape: [split.count] + featureShape,
                                       chunkRows: min(rows, split.count), deflateLevel: 4, shuffle: true)
                try group.writeDataset(DatasetLayout.labels, split.labels, shape: [split.count],
                                       chunkRows: min(65_536, split.count), deflateLevel: 4, shuffle: true)
                var counts = [Int](repeating: 0, count: classNames.count)
                for label in split.labels where label >= 0 && Int(label) < counts.count { counts[Int(label)] += 1 }
                try group.setAttribute("class_counts", counts)
            }
        }
    }
}
