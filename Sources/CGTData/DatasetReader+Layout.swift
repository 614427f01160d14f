import CGTHDF5

extension DatasetReader {
    /// Rows per chunk of a split's features: what reading one row decompresses; runs of 4,096
    /// rows for contiguous storage, which reads no more than it is asked for.
    public func chunkRows(of split: DatasetSplitName) throws -> Int {
        Self.chunkRows(of: try file.root.openDataset("\(split)/\(DatasetLayout.features)"))
    }

    static func chunkRows(of features: HDF5Dataset) -> Int { max(1, features.chunkShape?.first ?? 4096) }
}
