import CGTHDF5
import Dispatch

extension DatasetReader {
    /// Reads the rows `rows` of a split, in that order, checking labels and feature values.
    ///
    /// A rank uses this to read just the samples of its part of every batch of an epoch. The
    /// rows are read in runs of whole chunks that hold a needed row (each such chunk
    /// decompressed once, one plain hyperslab per run, no chunk without a needed row read),
    /// then picked in memory: a union of one hyperslab per row costs HDF5 time quadratic in
    /// the number of rows. When no row repeats (an epoch's rows), each is copied straight to
    /// its place in the result, with no staging copy.
    public func read(split: DatasetSplitName, rowIndices rows: [Int]) throws -> DatasetSplit {
        guard let size = splitSizes[split] else {
            throw DatasetError(file: path, object: "/\(split)", "no such split in this file")
        }
        precondition(rows.allSatisfy { $0 >= 0 && $0 < size }, "row outside split \(split) of \(size)")
        let width = featureCount
        try checkBudget(rows: rows.count, split: split)
        let started = DispatchTime.now()
        let featureSet = try file.root.openDataset("\(split)/\(DatasetLayout.features)")
        var allLabels = [Int32](repeating: 0, count: size)
        let labelSet = try file.root.openDataset("\(split)/\(DatasetLayout.labels)")
        try allLabels.withUnsafeMutableBufferPointer { try labelSet.read(into: $0) }
        try count(labelSet.readCost(rows: 0..<size))
        // Where each needed row lands: its place in the result when no row repeats, else its
        // place in a compact buffer of the distinct rows, in file order.
        var slot = [Int](repeating: -1, count: size)
        var distinct = 0
        for (i, row) in rows.enumerated() where slot[row] < 0 {
            slot[row] = i
            distinct += 1
        }
        let repeats = distinct < rows.count
        if repeats {
            distinct = 0
            for row in 0..<size where slot[row] >= 0 {
                slot[row] = distinct
                distinct += 1
            }
        }
        var compact = [Float](repeating: 0, count: distinct * width)
        let chunkRows = Self.chunkRows(of: featureSet)
        let blockChunks = max(1, (16 << 20) / max(1, chunkRows * width * 4))
        let chunkCount = (size + chunkRows - 1) / chunkRows
        var needed = [Bool](repeating: false, count: chunkCount)
        for row in rows { needed[row / chunkRows] = true }
        var block = [Float](repeating: 0, count: min(size, blockChunks * chunkRows) * width)
        var chunk = 0
        // Runs of consecutive chunks that hold a needed row, up to 16 MiB each; a chunk without
        // one is never read.
        while chunk < chunkCount {
            guard needed[chunk] else {
                chunk += 1
                continue
            }
            var end = chunk + 1
            while end < chunkCount && needed[end] && end - chunk < blockChunks { end += 1 }
            let readStart = chunk * chunkRows
            let readEnd = min(size, end * chunkRows)
            try block.withUnsafeMutableBufferPointer { buffer in
                try featureSet.read(
                    rows: readStart..<readEnd,
                    into: UnsafeMutableBufferPointer(rebasing: buffer[0..<((readEnd - readStart) * width)]))
            }
            try count(featureSet.readCost(rows: readStart..<readEnd))
            block.withUnsafeBufferPointer { source in
                compact.withUnsafeMutableBufferPointer { destination in
                    for row in readStart..<readEnd where slot[row] >= 0 {
                        (destination.baseAddress! + slot[row] * width).update(
                            from: source.baseAddress! + (row - readStart) * width, count: width)
                    }
                }
            }
            chunk = end
        }
        var features: [Float]
        if repeats {
            features = [Float](repeating: 0, count: rows.count * width)
            compact.withUnsafeBufferPointer { source in
                features.withUnsafeMutableBufferPointer { destination in
                    for (i, row) in rows.enumerated() {
                        (destination.baseAddress! + i * width).update(
                            from: source.baseAddress! + slot[row] * width, count: width)
                    }
                }
            }
        } else {
            features = consume compact
        }
        let labels = rows.map { allLabels[$0] }
        decode(&features, split: split)
        try checkValues(split: split, features: features, labels: labels) { rows[$0] }
        counters.seconds += Self.seconds(since: started)
        return DatasetSplit(
            name: split, features: features, labels: labels, sampleIDs: rows.map { Int64($0) },
            featureShape: featureShape)
    }
}
