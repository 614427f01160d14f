import CGTHDF5

extension DatasetReader {
    /// Rows per chunk of a split's features: what reading one row decompresses (the whole
    /// split for contiguous storage).
    public func chunkRows(of split: String) throws -> Int {
        let features = try file.root.openDataset("\(split)/\(DatasetLayout.features)")
        return max(1, features.chunkShape?.first ?? splitSizes[split] ?? 1)
    }
}
