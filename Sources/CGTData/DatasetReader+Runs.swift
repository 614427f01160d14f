import CGTHDF5
import Dispatch

extension DatasetReader {
    /// Reads the row ranges `runs` of a split, concatenated in the order given, checking labels
    /// and feature values.
    ///
    /// For reads of scattered whole chunks (the BatchNorm re-estimation's blocks): the datasets
    /// are opened once, so the labels' chunks, much longer than the features', stay in HDF5's
    /// chunk cache from one run to the next when the runs come in file order, and are counted
    /// once each; nothing is sized by the split (unlike `read(split:rowIndices:)`, whose tables
    /// are), only by the rows read.
    public func read(split: DatasetSplitName, runs: [Range<Int>]) throws -> DatasetSplit {
        guard let size = splitSizes[split] else {
            throw DatasetError(file: path, object: "/\(split)", "no such split in this file")
        }
        precondition(
            runs.allSatisfy { $0.lowerBound >= 0 && $0.upperBound <= size }, "run outside split \(split) of \(size)")
        let total = runs.reduce(0) { $0 + $1.count }
        try checkBudget(rows: total, split: split)
        let started = DispatchTime.now()
        let width = featureCount
        let x = try file.root.openDataset("\(split)/\(DatasetLayout.features)")
        let y = try file.root.openDataset("\(split)/\(DatasetLayout.labels)")
        let labelChunkRows = Self.chunkRows(of: y)
        var features = [Float](repeating: 0, count: total * width)
        var labels = [Int32](repeating: 0, count: total)
        var ids: [Int64] = []
        ids.reserveCapacity(total)
        var labelChunks = Set<Int>()
        var offset = 0
        for run in runs where !run.isEmpty {
            try features.withUnsafeMutableBufferPointer { buffer in
                try x.read(
                    rows: run,
                    into: UnsafeMutableBufferPointer(
                        rebasing: buffer[(offset * width)..<((offset + run.count) * width)]))
            }
            try labels.withUnsafeMutableBufferPointer { buffer in
                try y.read(
                    rows: run, into: UnsafeMutableBufferPointer(rebasing: buffer[offset..<(offset + run.count)]))
            }
            try count(x.readCost(rows: run))
            for chunk in (run.lowerBound / labelChunkRows)...((run.upperBound - 1) / labelChunkRows)
            where labelChunks.insert(chunk).inserted {
                try count(y.readCost(rows: (chunk * labelChunkRows)..<(chunk * labelChunkRows + 1)))
            }
            ids += run.map { Int64($0) }
            offset += run.count
        }
        decode(&features, split: split)
        try checkValues(split: split, features: features, labels: labels) { Int(ids[$0]) }
        counters.seconds += Self.seconds(since: started)
        return DatasetSplit(
            name: split, features: features, labels: labels, sampleIDs: ids, featureShape: featureShape)
    }
}
