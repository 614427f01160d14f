import CGTData
import CGTJob
import CGTTraining
import Foundation

/// How well an epoch's order mixes the training split, for `training.shuffle` modes and
/// shuffle buffers of several sizes: what a bounded shuffle costs, measured on the batches
/// training itself takes (`TrainingOrder`).
///
/// Three numbers per order, averaged over the steps (and ranks) of `epochs` epochs:
/// - label distance: the total-variation distance between a global batch's class histogram
///   and the split's (a uniform permutation has a small one from sampling alone; a file
///   sorted by class read in order has one near 1);
/// - chunks per local batch: how many of the file's chunks a rank's batch draws from;
/// - same-chunk pairs: the share of pairs of samples in a local batch that come from one chunk,
///   over that share for samples drawn uniformly (1: as mixed as uniform; the number of
///   chunks at worst). Rows stored next to each other (often scanned, recorded or sorted
///   together) are what a poor shuffle puts in one batch.
public struct ShuffleQuality {
    public let path: String
    public let ranks: Int
    public let globalBatch: Int
    public let seed: UInt64
    public let epochs: Int

    public init(path: String, ranks: Int, globalBatch: Int, seed: UInt64, epochs: Int) {
        self.path = path
        self.ranks = ranks
        self.globalBatch = globalBatch
        self.seed = seed
        self.epochs = epochs
    }

    /// One order's numbers.
    public struct Row: Codable, Sendable {
        public var order: String
        /// The shuffle buffer's rows (nil: the piece held and shuffled whole).
        public var bufferRows: Int?
        public var labelDistance: Double
        public var chunksPerLocalBatch: Double
        public var sameChunkPairs: Double
    }

    public struct Result: Codable, Sendable {
        public var file: String
        public var trainSamples: Int
        public var chunkRows: Int
        public var ranks: Int
        public var globalBatch: Int
        public var pieceRows: Int
        public var epochs: Int
        public var rows: [Row]

        public var report: String {
            var lines = [
                "shuffle quality: \(file), \(trainSamples) train samples in chunks of \(chunkRows) rows, \(ranks) rank\(ranks == 1 ? "" : "s") (pieces of \(pieceRows)), batches of \(globalBatch), epochs 0-\(epochs - 1)",
                "order                                      buffer  label distance  chunks per local batch  same-chunk pairs (uniform = 1)",
            ]
            for row in rows {
                lines.append(
                    row.order.padding(toLength: 42, withPad: " ", startingAt: 0)
                        + String(
                            format: " %7@  %14.3f  %22.1f  %30.2f", row.bufferRows.map(String.init) ?? "-",
                            row.labelDistance, row.chunksPerLocalBatch, row.sameChunkPairs))
            }
            return lines.joined(separator: "\n")
        }
    }

    /// Measures `global` mode (a uniform permutation), `blocks` with pieces held, and `blocks`
    /// streamed through buffers of 1/2, 1/8 and 1/32 of a piece and of one local batch.
    public func run() throws -> Result {
        let reader = try DatasetReader(path: path)
        defer { try? reader.close() }
        let count = reader.splitSizes[.train] ?? 0
        let chunkRows = try reader.chunkRows(of: .train)
        let piece = try TrainingOrder.pieceRows(reader: reader, ranks: ranks, globalBatch: globalBatch, mode: .blocks)
        let localBatch = (globalBatch + ranks - 1) / ranks
        var orders: [(String, ShuffleMode, Int?)] = [
            ("global (uniform permutation)", .global, nil), ("blocks, piece held", .blocks, nil),
        ]
        for divisor in [2, 8, 32] where piece / divisor > localBatch {
            orders.append(("blocks, buffer 1/\(divisor) of a piece", .blocks, piece / divisor))
        }
        orders.append(("blocks, buffer of one local batch", .blocks, localBatch))
        var labelCounts = [Int](repeating: 0, count: reader.classes)
        var chunkSizes = [Int](repeating: 0, count: (count + chunkRows - 1) / chunkRows)
        var rows: [Row] = []
        var uniformShare = 1.0
        for (name, mode, buffer) in orders {
            var distance = 0.0
            var steps = 0
            var chunks = 0.0
            var pairRatio = 0.0
            var localBatches = 0
            for epoch in 0..<epochs {
                let batches = try TrainingOrder.localBatches(
                    reader: reader, ranks: ranks, globalBatch: globalBatch, seed: seed, mode: mode, bufferRows: buffer,
                    epoch: epoch)
                if rows.isEmpty && epoch == 0 {
                    for rank in batches {
                        for batch in rank {
                            for label in batch.labels { labelCounts[Int(label)] += 1 }
                            for id in batch.sampleIDs { chunkSizes[Int(id) / chunkRows] += 1 }
                        }
                    }
                    uniformShare = uniformSameChunkShare(chunkSizes, total: count)
                }
                for step in 0..<(batches.first?.count ?? 0) {
                    var histogram = [Int](repeating: 0, count: reader.classes)
                    var n = 0
                    for rank in batches {
                        for label in rank[step].labels { histogram[Int(label)] += 1 }
                        n += rank[step].labels.count
                    }
                    distance +=
                        zip(histogram, labelCounts).map { abs(Double($0) / Double(n) - Double($1) / Double(count)) }
                        .reduce(0, +) / 2
                    steps += 1
                    for rank in batches {
                        let ids = rank[step].sampleIDs
                        var perChunk: [Int: Int] = [:]
                        for id in ids { perChunk[Int(id) / chunkRows, default: 0] += 1 }
                        chunks += Double(perChunk.count)
                        let pairs = Double(ids.count * (ids.count - 1))
                        if pairs > 0 {
                            let same = perChunk.values.reduce(0.0) { $0 + Double($1 * ($1 - 1)) }
                            pairRatio += same / pairs / uniformShare
                        }
                        localBatches += 1
                    }
                }
            }
            rows.append(
                Row(
                    order: name, bufferRows: buffer, labelDistance: distance / Double(max(1, steps)),
                    chunksPerLocalBatch: chunks / Double(max(1, localBatches)),
                    sameChunkPairs: pairRatio / Double(max(1, localBatches))))
        }
        return Result(
            file: path, trainSamples: count, chunkRows: chunkRows, ranks: ranks, globalBatch: globalBatch,
            pieceRows: piece, epochs: epochs, rows: rows)
    }

    /// The chance that two distinct samples drawn uniformly share a chunk.
    private func uniformSameChunkShare(_ sizes: [Int], total: Int) -> Double {
        let same = sizes.reduce(0.0) { $0 + Double($1) * Double($1 - 1) }
        return max(same / (Double(total) * Double(total - 1)), 1e-12)
    }
}
