import CGTHDF5

extension DatasetReader {
    /// Reads the rows `rows` of a split, in that order, checking labels and feature values.
    ///
    /// A rank uses this to read just the samples of its part of every batch of an epoch.
    public func read(split: String, rowIndices rows: [Int]) throws -> DatasetSplit {
        guard let size = splitSizes[split] else {
            throw DatasetError(file: path, object: "/\(split)", "no such split in this file")
        }
        precondition(rows.allSatisfy { $0 >= 0 && $0 < size }, "row outside split \(split) of \(size)")
        var features = [Float](repeating: 0, count: rows.count * featureCount)
        var labels = [Int32](repeating: 0, count: rows.count)
        if !rows.isEmpty {
            try features.withUnsafeMutableBufferPointer {
                try file.root.openDataset("\(split)/\(DatasetLayout.features)").read(rowIndices: rows, into: $0)
            }
            try labels.withUnsafeMutableBufferPointer {
                try file.root.openDataset("\(split)/\(DatasetLayout.labels)").read(rowIndices: rows, into: $0)
            }
        }
        try checkValues(split: split, features: features, labels: labels) { rows[$0] }
        return DatasetSplit(name: split, features: features, labels: labels, sampleIDs: rows.map { Int64($0) }, featureShape: featureShape)
    }
}
