import CGTData
import CGTEvaluation
import CGTFiles
import CGTJob
import CGTKernels
import CGTRandom
import Dispatch
import Foundation

/// The training samples one rank needs, epoch by epoch, and its part of every step.
///
/// `blocks` mode (the default) reads each epoch the rank's piece of a stream of chunks
/// permuted from (seed, epoch) (`BlockShufflePlan`), about 1/R of the split, shuffles it whole,
/// and takes its share of every step from it: the steps and batch sizes of `global` mode, every
/// sample once per epoch, but which samples meet in a batch depends on R. `global` mode reads,
/// at the start of each epoch, exactly the rows of this rank's part of every global batch of
/// the epoch (see `BatchPlan`): N ranks see the batches of 1 rank, at the price of every rank
/// decompressing nearly the whole split every epoch. `local` mode reads one contiguous shard
/// `[r N / R, (r + 1) N / R)` once and shuffles within it from (seed, epoch, rank); each rank
/// takes its share of the global batch from its own shard, every step has a full global batch,
/// and the tail of a shard that does not fill a local batch is left out of that epoch (a
/// different tail each epoch).
///
/// While an epoch trains, the next epoch's rows (`global`, `blocks`) are read on a thread of
/// their own; the loop waits for them only at the next epoch's start (`takeReads`).
/// HDF5 is used by one thread at a time: the read is finished (`settle`) before the loop
/// touches HDF5 again (evaluation, checkpoints) or ends.
final class TrainingShard {
    let reader: DatasetReader
    let rank: Int
    let ranks: Int
    let seed: UInt64
    let mode: ShuffleMode
    let sampleCount: Int
    let globalBatch: Int
    private let plan: BatchPlan
    private let blockPlan: BlockShufflePlan?
    private(set) var data: DatasetSplit
    private var order: [Int] = []
    private var localRanges: [Range<Int>] = []
    private var globalCounts: [Int] = []
    private let shardRows: Range<Int>
    /// The next epoch's rows, being read on a thread of their own.
    private var pending: PendingRead?
    /// Since `takeReads()` was last called: the bytes of the rows made ready, and the seconds
    /// the loop waited for rows (whole reads, and reads ahead not finished when needed).
    private var reads = DataReadCounters()

    init(reader: DatasetReader, rank: Int, ranks: Int, seed: UInt64, globalBatch: Int, mode: ShuffleMode) throws {
        self.reader = reader
        self.rank = rank
        self.ranks = ranks
        self.seed = seed
        self.globalBatch = globalBatch
        self.mode = mode
        sampleCount = reader.splitSizes[.train] ?? 0
        plan = BatchPlan(sampleCount: sampleCount, globalBatch: globalBatch, ranks: ranks)
        shardRows = (rank * sampleCount / ranks)..<((rank + 1) * sampleCount / ranks)
        blockPlan =
            mode == .blocks
            ? BlockShufflePlan(
                sampleCount: sampleCount, globalBatch: globalBatch,
                blockRows: try reader.chunkRows(of: .train), ranks: ranks)
            : nil
        let started = DispatchTime.now()
        let before = reader.counters
        data =
            mode == .local
            ? try reader.read(split: .train, rows: shardRows)
            : DatasetSplit(
                name: .train, features: [], labels: [], sampleIDs: [], featureShape: reader.featureShape)
        reads = reader.counters - before
        reads.seconds = DatasetReader.seconds(since: started)
    }

    /// The seconds `reads` holds, set to 0: the run's up-front read, told apart from the
    /// first epoch's stall (its bytes stay with the epoch).
    func takeReadSeconds() -> Double {
        defer { reads.seconds = 0 }
        return reads.seconds
    }

    /// What `reads` holds (the epoch's, when called once per epoch), and starts anew.
    func takeReads() -> DataReadCounters {
        defer { reads = DataReadCounters() }
        return reads
    }

    /// Why `blocks` mode saves little I/O with this file, if it does, in one line: chunks longer
    /// than half a rank's piece, where `DatasetWriter.chunkRows` would cut the split finer. A
    /// split that rule keeps in a few chunks (a small file) is not worth a warning: reading all
    /// of it costs little, and `blocks` mode still trains on every sample once per epoch.
    var blockLayoutWarning: String? {
        guard let blockPlan, ranks > 1 else { return nil }
        let piece = blockPlan.piece(rank: 0).count
        let storage = reader.storage[.train] ?? .float32
        let ruleRows = DatasetWriter.chunkRows(
            sampleCount: sampleCount, featureCount: featureCount, elementSize: storage.elementSize)
        guard blockPlan.blockRows * 2 > piece, blockPlan.blockRows > ruleRows else { return nil }
        let chunksRead = Set(blockPlan.rows(seed: seed, epoch: 0, rank: 0).map { $0 / blockPlan.blockRows }).count
        let fraction = min(1, Double(chunksRead * blockPlan.blockRows) / Double(max(1, sampleCount)))
        let chunk = ([ruleRows] + featureShape).map(String.init).joined(separator: "x")
        let rows = blockPlan.blockRows
        return
            "\(reader.path): /train/x has chunks of \(rows) rows, more than half of a rank's \(piece)-row piece on \(ranks) ranks: training.shuffle: blocks has rank 0 decompress \(String(format: "%.2f", fraction)) of the split per epoch instead of about 1/\(ranks); rewrite it with chunks of \(ruleRows) rows (h5repack -l /train/x:CHUNK=\(chunk) IN OUT)"
    }

    /// The local batch size of rank r in `local` mode: the global batch split as evenly as possible.
    private func localBatch(of r: Int) -> Int { Self.localBatch(of: r, globalBatch: globalBatch, ranks: ranks) }

    private static func localBatch(of r: Int, globalBatch: Int, ranks: Int) -> Int {
        globalBatch * (r + 1) / ranks - globalBatch * r / ranks
    }

    var stepsPerEpoch: Int {
        Self.stepsPerEpoch(sampleCount: sampleCount, globalBatch: globalBatch, ranks: ranks, mode: mode)
    }

    /// Optimizer steps per epoch for a split of `sampleCount` (known before any row is read).
    static func stepsPerEpoch(sampleCount: Int, globalBatch: Int, ranks: Int, mode: ShuffleMode) -> Int {
        switch mode {
        case .global, .blocks:
            return BatchPlan(sampleCount: sampleCount, globalBatch: globalBatch, ranks: ranks).stepsPerEpoch
        case .local:
            // Rank r has the same rows every epoch: its shard.
            return (0..<ranks).map { r in
                ((r + 1) * sampleCount / ranks - r * sampleCount / ranks)
                    / localBatch(of: r, globalBatch: globalBatch, ranks: ranks)
            }.min() ?? 0
        }
    }

    var featureCount: Int { reader.featureCount }
    var featureShape: [Int] { reader.featureShape }

    /// The epoch `prepare` last made ready.
    private var preparedEpoch: Int?

    /// What one epoch needs from the file: its rows, and where each step's samples are in them.
    private struct EpochRows {
        var data: DatasetSplit?
        var order: [Int]
        var localRanges: [Range<Int>]
        var globalCounts: [Int]
        /// The bytes reading them took, counted by the thread that read them.
        var cost = DataReadCounters()
    }

    /// Makes the samples of `epoch` ready (reads them, or takes those read ahead; reshuffles in
    /// `local` mode); nothing if done already.
    func prepare(epoch: Int) throws {
        guard preparedEpoch != epoch else { return }
        preparedEpoch = nil
        let started = DispatchTime.now()
        defer { reads.seconds += DatasetReader.seconds(since: started) }
        let rows: EpochRows
        if let pending, pending.epoch == epoch {
            self.pending = nil
            rows = try pending.wait()
        } else {
            settle()
            pending = nil
            rows = try load(epoch: epoch)
        }
        reads = reads + rows.cost
        if let read = rows.data { data = read }
        order = rows.order
        localRanges = rows.localRanges
        globalCounts = rows.globalCounts
        preparedEpoch = epoch
    }

    /// Starts reading the rows of `epoch` on a thread of its own (`global` and `blocks` modes).
    /// The caller must not use HDF5 until `prepare` takes them or `settle` returns.
    func readAhead(epoch: Int) {
        guard mode != .local, pending == nil, preparedEpoch != epoch else { return }
        let read = PendingRead(epoch: epoch)
        pending = read
        let thread = Thread { [self] in
            SignalDrill.reached(.readAhead)
            read.finish(Result { try load(epoch: epoch) })
        }
        thread.name = "cgt-read-ahead"
        thread.start()
    }

    /// Waits for a read ahead, if one runs (keeping its rows, or its error, for `prepare`):
    /// HDF5 is free for the caller.
    func settle() {
        guard let pending else { return }
        let started = DispatchTime.now()
        _ = try? pending.wait()
        reads.seconds += DatasetReader.seconds(since: started)
    }

    /// The rows and step layout of `epoch`; reads the file except in `local` mode.
    private func load(epoch: Int) throws -> EpochRows {
        if mode != .local { try reader.checkUnchanged() }
        let before = reader.counters
        let steps = stepsPerEpoch
        var rows = EpochRows(data: nil, order: [], localRanges: [], globalCounts: [])
        switch mode {
        case .global:
            let indices: [Int]
            (indices, rows.localRanges) = plan.rows(seed: seed, epoch: epoch, rank: rank)
            rows.globalCounts = (0..<steps).map { plan.globalRange(step: $0).count }
            rows.data = try reader.read(split: .train, rowIndices: indices)
            rows.order = Array(0..<indices.count)
        case .blocks:
            let blockPlan = blockPlan!
            let indices = blockPlan.rows(seed: seed, epoch: epoch, rank: rank)
            rows.data = try reader.read(split: .train, rowIndices: indices)
            rows.order = Array(0..<indices.count)
            var generator = Self.pieceGenerator(seed: seed, epoch: epoch, rank: rank)
            rows.order.shuffle(using: &generator)
            rows.localRanges = blockPlan.stepRanges(rank: rank)
            rows.globalCounts = (0..<steps).map { plan.globalRange(step: $0).count }
        case .local:
            var generator = Self.pieceGenerator(seed: seed, epoch: epoch, rank: rank)
            rows.order = Array(0..<data.count)
            rows.order.shuffle(using: &generator)
            let b = localBatch(of: rank)
            for step in 0..<steps {
                rows.localRanges.append((step * b)..<((step + 1) * b))
                rows.globalCounts.append(globalBatch)
            }
        }
        rows.cost = reader.counters - before
        rows.cost.seconds = 0
        return rows
    }

    /// The order in which a rank visits its shard (`local`) or piece (`blocks`) in `epoch`.
    private static func pieceGenerator(seed: UInt64, epoch: Int, rank: Int) -> SeededGenerator {
        SeededGenerator(seed: seed, stream: 0x4C4F_4341 &+ UInt64(epoch) &* 0x1_0000 &+ UInt64(rank))
    }

    /// A read running on another thread, and its result once there.
    private final class PendingRead: @unchecked Sendable {
        let epoch: Int
        private let done = DispatchSemaphore(value: 0)
        private var result: Result<EpochRows, Error>?

        init(epoch: Int) { self.epoch = epoch }

        func finish(_ result: Result<EpochRows, Error>) {
            self.result = result
            done.signal()
        }

        /// The rows, once read (an error reading them is thrown here, on the loop's thread).
        func wait() throws -> EpochRows {
            done.wait()
            done.signal()
            return try result!.get()
        }
    }

    /// Positions in `data` of this rank's samples in `step`.
    func positions(step: Int) -> ArraySlice<Int> { order[localRanges[step]] }

    /// Samples in the global batch of `step`, over all ranks: N of the loss.
    func globalCount(step: Int) -> Int { globalCounts[step] }

    /// The most samples this rank has in one step.
    var maxLocalBatch: Int {
        mode == .local ? localBatch(of: rank) : plan.maxLocalBatch
    }
}
