import CGTData
import CGTJob
import CGTMPI
import Foundation

/// Measures how fast each rank reads its rows of one training epoch from a dataset file.
///
/// Every rank reads exactly what a training run on this many ranks reads for an epoch, all
/// ranks at once after a barrier, so they contend for the disk and the cores as training does:
/// with `blocks` shuffle (the default) its piece of the epoch's stream of permuted chunks
/// (`BlockShufflePlan`); with `global` shuffle its part of every global batch of the epoch (`BatchPlan.rows`,
/// through `DatasetReader.read(split:rowIndices:)`, which decompresses, converts and checks),
/// rows spread over the whole split; with `local` its contiguous shard, read once. The rows are
/// those of epoch 0 under `seed`.
/// With `cold`, each rank first asks the kernel to drop the file's cached pages
/// (`posix_fadvise(POSIX_FADV_DONTNEED)`), so the file is read from the disk rather than memory.
public struct DataReadBenchmark {
    public let path: String
    public let globalBatch: Int
    public let seed: UInt64
    public let cold: Bool
    public let shuffle: ShuffleMode

    public init(path: String, globalBatch: Int, seed: UInt64 = 0, cold: Bool = false, shuffle: ShuffleMode = .blocks) {
        self.path = path
        self.globalBatch = globalBatch
        self.seed = seed
        self.cold = cold
        self.shuffle = shuffle
    }

    /// One rank's epoch read.
    public struct RankResult: Codable, Sendable {
        public var rank: Int
        public var samples: Int
        public var seconds: Double
        public var bytesRead: Int64
        public var bytesDecompressed: Int64
        public var readMBps: Double
        public var decompressedMBps: Double
        public var samplesPerSecond: Double

        init(rank: Int, samples: Int, seconds: Double, bytesRead: Int64, bytesDecompressed: Int64) {
            self.rank = rank
            self.samples = samples
            self.seconds = seconds
            self.bytesRead = bytesRead
            self.bytesDecompressed = bytesDecompressed
            let time = max(seconds, 1e-9)
            readMBps = Double(bytesRead) / 1e6 / time
            decompressedMBps = Double(bytesDecompressed) / 1e6 / time
            samplesPerSecond = Double(samples) / time
        }
    }

    public struct Result: Codable, Sendable {
        public var file: String
        public var fileBytes: Int
        public var featureStorage: String
        public var filters: [String]
        public var cold: Bool
        public var shuffle: String
        public var ranks: Int
        public var globalBatch: Int
        public var trainSamples: Int
        /// The train split's features once decompressed: what a rank reading all of it inflates.
        public var splitBytes: Int64
        public var cpu: String
        public var perRank: [RankResult]

        /// Bytes decompressed per rank as a fraction of the split: the mean over ranks and the
        /// largest.
        public var splitFraction: (mean: Double, worst: Double) {
            let fractions = perRank.map { Double($0.bytesDecompressed) / Double(max(1, splitBytes)) }
            return (fractions.reduce(0, +) / Double(max(1, fractions.count)), fractions.max() ?? 0)
        }

        /// The slowest rank's mean rates: what bounds an epoch's start.
        public var slowest: RankResult { perRank.max { $0.seconds < $1.seconds }! }

        public var report: String {
            let mean = { (value: (RankResult) -> Double) in perRank.map(value).reduce(0, +) / Double(perRank.count) }
            let wall = slowest.seconds
            let total = perRank.reduce(into: (read: Int64(0), decompressed: Int64(0))) {
                $0.read += $1.bytesRead
                $0.decompressed += $1.bytesDecompressed
            }
            return String(
                format:
                    "data read: %d rank%@, %@ (%.2f GiB, %@, %@%@), %d train samples, %@ shuffle, batches of %d: per rank %.3f of the split's %.1f MB decompressed (worst rank %.3f), %.1f MB/s read, %.1f MB/s decompressed, %.0f samples/s (mean); all ranks %.1f MB/s read, %.0f samples/s, epoch read in %.2f s; %@",
                ranks, ranks == 1 ? "" : "s", file, Double(fileBytes) / Double(1 << 30), featureStorage,
                filters.isEmpty ? "uncompressed" : filters.joined(separator: " + "), cold ? ", page cache dropped" : "",
                trainSamples, shuffle, globalBatch, splitFraction.mean, Double(splitBytes) / 1e6, splitFraction.worst,
                mean(\.readMBps), mean(\.decompressedMBps),
                mean(\.samplesPerSecond),
                Double(total.read) / 1e6 / max(wall, 1e-9), Double(trainSamples) / max(wall, 1e-9), wall, cpu)
        }
    }

    /// Runs on every rank of `world`; every rank returns the same result.
    public func run(world: Communicator) throws -> Result {
        let reader = try DatasetReader(path: path)
        defer { try? reader.close() }
        let split = DatasetSplitName.train
        let count = reader.splitSizes[split] ?? 0
        guard globalBatch >= 2 * world.size, count >= 2 * world.size else {
            throw DatasetError(
                file: path, object: "/\(split)",
                "\(count) samples in batches of \(globalBatch) cannot give each of \(world.size) ranks two")
        }
        let plan = BatchPlan(sampleCount: count, globalBatch: globalBatch, ranks: world.size)
        let rows: [Int]
        switch shuffle {
        case .global: rows = plan.rows(seed: seed, epoch: 0, rank: world.rank).rows
        case .blocks:
            rows = BlockShufflePlan(
                sampleCount: count, globalBatch: globalBatch, blockRows: try reader.chunkRows(of: split),
                ranks: world.size
            ).rows(seed: seed, epoch: 0, rank: world.rank)
        case .local: rows = []
        }
        if cold { Self.dropCachedPages(of: path) }
        try world.barrier()
        let before = reader.counters
        let started = DispatchTime.now()
        let samples: Int
        switch shuffle {
        case .global, .blocks: samples = try reader.read(split: split, rowIndices: rows).count
        case .local: samples = try reader.read(split: split, rank: world.rank, of: world.size).count
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
        let spent = reader.counters - before
        // Each rank fills its own slot; one sum gives every rank every slot.
        var slots = [Double](repeating: 0, count: 4 * world.size)
        let base = 4 * world.rank
        slots[base] = Double(samples)
        slots[base + 1] = seconds
        slots[base + 2] = Double(spent.bytesRead)
        slots[base + 3] = Double(spent.bytesDecompressed)
        try slots.withUnsafeMutableBufferPointer { try world.allReduceSum($0) }
        let perRank = (0..<world.size).map { r in
            RankResult(
                rank: r, samples: Int(slots[4 * r]), seconds: slots[4 * r + 1], bytesRead: Int64(slots[4 * r + 2]),
                bytesDecompressed: Int64(slots[4 * r + 3]))
        }
        let summary = try DatasetSummary.read(path)
        let train = summary.splits.first { $0.name == split }
        return Result(
            file: path, fileBytes: summary.fileSize, featureStorage: reader.storage[split]?.rawValue ?? "?",
            filters: train?.filters ?? [], cold: cold, shuffle: shuffle.rawValue, ranks: world.size,
            globalBatch: globalBatch,
            trainSamples: count,
            splitBytes: Int64(count * reader.featureCount * (reader.storage[split] ?? .float32).elementSize),
            cpu: TrainingBenchmark.cpuName(), perRank: perRank)
    }

    /// Asks the kernel to forget the file's cached pages (clean ones: nothing is lost).
    static func dropCachedPages(of path: String) {
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { return }
        defer { close(descriptor) }
        _ = posix_fadvise(descriptor, 0, 0, Int32(POSIX_FADV_DONTNEED))
    }
}
