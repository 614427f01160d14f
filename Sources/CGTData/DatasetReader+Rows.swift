import CGTHDF5
import Dispatch

extension DatasetReader {
    /// Reads the rows `rows` of a split, in that order, checking labels and feature values.
    ///
    /// A rank uses this to read just the samples of its part of every batch of an epoch, or a
    /// segment of a stream. The rows are read in runs of whole chunks that hold a needed row
    /// (each such chunk decompressed once, one plain hyperslab per run, no chunk without a
    /// needed row read), and each row is copied straight from the run to every place it was
    /// asked for: a union of one hyperslab per row costs HDF5 time quadratic in the number of
    /// rows. Memory beyond the result: one run (at most 16 MiB) and the request sorted, never a
    /// table the size of the split.
    /// The labels come from the split's, read whole the first time (`allLabels(of:)`).
    /// - Complexity: O(n log n) in the rows asked for, plus the chunks read.
    public func read(split: DatasetSplitName, rowIndices rows: [Int]) throws -> DatasetSplit {
        guard let size = splitSizes[split] else {
            throw DatasetError(file: path, object: "/\(split)", "no such split in this file")
        }
        precondition(rows.allSatisfy { $0 >= 0 && $0 < size }, "row outside split \(split) of \(size)")
        let width = featureCount
        try checkBudget(rows: rows.count, split: split)
        let started = DispatchTime.now()
        let featureSet = try file.root.openDataset("\(split)/\(DatasetLayout.features)")
        let labelSet = try file.root.openDataset("\(split)/\(DatasetLayout.labels)")
        // The places asked for, in file order of their rows.
        let places = rows.indices.sorted { rows[$0] < rows[$1] || (rows[$0] == rows[$1] && $0 < $1) }
        var features = [Float](repeating: 0, count: rows.count * width)
        var labels = [Int32](repeating: 0, count: rows.count)
        let chunkRows = Self.chunkRows(of: featureSet)
        let blockChunks = max(1, (16 << 20) / max(1, chunkRows * width * 4))
        // Runs of consecutive chunks that hold a needed row, up to 16 MiB each (a chunk
        // without one is never read), with the places they fill.
        var runs: [(rows: Range<Int>, places: Range<Int>)] = []
        var next = 0
        while next < places.count {
            let firstChunk = rows[places[next]] / chunkRows
            var endChunk = firstChunk + 1
            var last = next
            while last < places.count {
                let chunk = rows[places[last]] / chunkRows
                if chunk == endChunk && endChunk - firstChunk < blockChunks {
                    endChunk += 1
                } else if chunk >= endChunk {
                    break
                }
                last += 1
            }
            runs.append(((firstChunk * chunkRows)..<min(size, endChunk * chunkRows), next..<last))
            next = last
        }
        // One buffer as large as the longest run (a segment of a stream needs little).
        var block = [Float](repeating: 0, count: (runs.map(\.rows.count).max() ?? 0) * width)
        for (run, placed) in runs {
            try block.withUnsafeMutableBufferPointer { buffer in
                try featureSet.read(
                    rows: run, into: UnsafeMutableBufferPointer(rebasing: buffer[0..<(run.count * width)]))
            }
            try count(featureSet.readCost(rows: run))
            block.withUnsafeBufferPointer { source in
                features.withUnsafeMutableBufferPointer { destination in
                    for place in places[placed] {
                        (destination.baseAddress! + place * width).update(
                            from: source.baseAddress! + (rows[place] - run.lowerBound) * width, count: width)
                    }
                }
            }
        }
        let splitLabels = try allLabels(of: split)
        for (place, row) in rows.enumerated() { labels[place] = splitLabels[row] }
        decode(&features, split: split)
        try checkValues(split: split, features: features, labels: labels) { rows[$0] }
        counters.seconds += Self.seconds(since: started)
        return DatasetSplit(
            name: split, features: features, labels: labels, sampleIDs: rows.map { Int64($0) },
            featureShape: featureShape)
    }

    /// Every label of `split`, read whole once and kept: 4 bytes a sample, within the
    /// per-sample tables the reader budgets when it opens the file. Rows read in a random
    /// order of blocks (a streamed epoch) would otherwise decompress a label chunk, 65,536
    /// labels long as `cgt prepare` writes them, for every feature chunk.
    func allLabels(of split: DatasetSplitName) throws -> [Int32] {
        if let labels = labelCache[split] { return labels }
        let size = splitSizes[split] ?? 0
        let labelSet = try file.root.openDataset("\(split)/\(DatasetLayout.labels)")
        var labels = [Int32](repeating: 0, count: size)
        try labels.withUnsafeMutableBufferPointer { try labelSet.read(rows: 0..<size, into: $0) }
        try count(labelSet.readCost(rows: 0..<size))
        labelCache[split] = labels
        return labels
    }
}
