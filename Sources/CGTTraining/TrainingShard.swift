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
/// How much of its piece a rank holds is its `ShardResidency`: a piece that fits is held
/// whole, and the next epoch's is read while an epoch trains; a larger one streams (see
/// `TrainingShard+Streaming.swift`). Every read runs on the shard's `ReadThread`; HDF5 is
/// used by one thread at a time: reads are finished (`settle`) before the loop touches HDF5
/// again (evaluation, checkpoints) or ends.
final class TrainingShard {
    let reader: DatasetReader
    let rank: Int
    let ranks: Int
    let seed: UInt64
    let mode: ShuffleMode
    let sampleCount: Int
    let globalBatch: Int
    let plan: BatchPlan
    let blockPlan: BlockShufflePlan?
    /// A held epoch's rows (`local`: the shard).
    private var data: DatasetSplit
    private var order: [Int] = []
    private var localRanges: [Range<Int>] = []
    private let shardRows: Range<Int>
    /// The thread every read of the training split runs on.
    let readThread = ReadThread()
    /// The next held epoch's rows, being read on the read thread.
    private var pending: (epoch: Int, read: PendingRead<EpochRows>)?
    /// The epoch being trained, when it streams, and the next one once it is read ahead.
    var streamed: StreamedEpoch?
    var nextStreamed: StreamedEpoch?
    /// The epoch `readAhead` asked for, when it streams: started once this epoch's reads are asked for.
    var streamedAhead: Int?
    /// One row per slot of a shuffle buffer, shared by the streamed epochs in turn.
    var slotStorage: SlotStorage?
    /// How much of its piece the rank holds from now on (set by `adopt`).
    private(set) var residency: ShardResidency = .held
    /// The epoch a checkpoint stopped in and the residency it was trained with, replayed.
    private var resumedEpoch: (epoch: Int, residency: ShardResidency)?
    /// Since `takeReads()` was last called: the bytes of the rows made ready, and the seconds
    /// the loop waited for rows (whole reads, and reads ahead not finished when needed).
    var reads = DataReadCounters()

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
        // (`local` reads its shard at the first `prepare`, once its residency is settled.)
        data = Self.noRows(featureShape: reader.featureShape)
    }

    /// What `data` is when no epoch is held.
    private static func noRows(featureShape: [Int]) -> DatasetSplit {
        DatasetSplit(name: .train, features: [], labels: [], sampleIDs: [], featureShape: featureShape)
    }

    deinit { readThread.stop() }

    /// The rows of this rank's piece of an epoch (its shard in `local` mode).
    var pieceRows: Int {
        switch mode {
        case .local: shardRows.count
        case .blocks: blockPlan!.piece(rank: rank).count
        case .global: (0..<stepsPerEpoch).reduce(0) { $0 + plan.localRange(step: $1, rank: rank).count }
        }
    }

    /// Holds or streams the epochs from now on as `residency` says; `resumed`, the epoch a
    /// checkpoint stopped in, as it was trained then. Before the first `prepare`.
    func adopt(_ residency: ShardResidency, resumed: (epoch: Int, residency: ShardResidency)?) {
        precondition(preparedEpoch == nil, "a residency adopted after an epoch was prepared")
        self.residency = mode == .local ? .held : residency
        resumedEpoch = mode == .local ? nil : resumed
    }

    /// How `epoch` is held.
    func residency(of epoch: Int) -> ShardResidency {
        if let resumedEpoch, resumedEpoch.epoch == epoch { return resumedEpoch.residency }
        return residency
    }

    /// Whether `gather` reads (a streamed epoch), and so can fail on one rank alone: the loop
    /// then has the ranks agree on every step's read. A held epoch was read and checked whole.
    var gatherCanFail: Bool { streamed != nil }

    /// The seconds `reads` holds, set to 0: the run's up-front read, told apart from the
    /// first epoch's stall (its bytes stay with the epoch).
    func takeReadSeconds() -> Double {
        defer { reads.seconds = 0 }
        return reads.seconds
    }

    /// What `reads` holds (the epoch's, when called once per epoch), and starts anew.
    func takeReads() -> DataReadCounters {
        if let streamed { reads = reads + streamed.takeCost() }
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
        let ruleRows = ruleChunkRows
        guard blockPlan.blockRows * 2 > piece, blockPlan.blockRows > ruleRows else { return nil }
        let chunksRead = Set(blockPlan.rows(seed: seed, epoch: 0, rank: 0).map { $0 / blockPlan.blockRows }).count
        let fraction = min(1, Double(chunksRead * blockPlan.blockRows) / Double(max(1, sampleCount)))
        let rows = blockPlan.blockRows
        return
            "\(reader.path): /train/x has chunks of \(rows) rows, more than half of a rank's \(piece)-row piece on \(ranks) ranks: training.shuffle: blocks has rank 0 decompress \(String(format: "%.2f", fraction)) of the split per epoch instead of about 1/\(ranks); rewrite it with chunks of \(ruleRows) rows (\(rechunkCommand(rows: ruleRows)))"
    }

    /// The rows per chunk `cgt prepare` would give this training split (`DatasetWriter.chunkRows`).
    var ruleChunkRows: Int {
        DatasetWriter.chunkRows(
            sampleCount: sampleCount, featureCount: featureCount,
            elementSize: (reader.storage[.train] ?? .float32).elementSize)
    }

    /// The command that rewrites the training features in chunks of `rows`.
    func rechunkCommand(rows: Int) -> String {
        "h5repack -l /train/x:CHUNK=\(([rows] + featureShape).map(String.init).joined(separator: "x")) IN OUT"
    }

    /// The rows of `rows` and what reading them cost, read now (on the read thread, or by the
    /// loop after `settle`), the file first checked unchanged.
    func readCounted(rows: [Int]) throws -> (DatasetSplit, DataReadCounters) {
        try reader.checkUnchanged()
        let before = reader.counters
        let data = try reader.read(split: .train, rowIndices: rows)
        var cost = reader.counters - before
        cost.seconds = 0
        return (data, cost)
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
    struct EpochRows {
        var data: DatasetSplit?
        var order: [Int]
        var localRanges: [Range<Int>]
        /// The bytes reading them took, counted by the thread that read them.
        var cost = DataReadCounters()
    }

    /// Makes the samples of `epoch` ready (reads them, or takes those read ahead; reshuffles in
    /// `local` mode; a streamed epoch starts reading); nothing if done already.
    func prepare(epoch: Int) throws {
        guard preparedEpoch != epoch else { return }
        preparedEpoch = nil
        let started = DispatchTime.now()
        defer { reads.seconds += DatasetReader.seconds(since: started) }
        if case .streamed = residency(of: epoch) {
            if let streamed { reads = reads + streamed.takeCost() }
            if let next = nextStreamed, next.epoch == epoch {
                next.readAhead(fill: false)
                streamed = next
            } else {
                settle()
                streamed = makeStreamedEpoch(epoch)
            }
            nextStreamed = nil
            streamedAhead = nil
            pending = nil
            try streamed!.awaitFirstSegment()
            data = Self.noRows(featureShape: featureShape)
            preparedEpoch = epoch
            return
        }
        streamed = nil
        let rows: EpochRows
        if let pending, pending.epoch == epoch {
            self.pending = nil
            rows = try pending.read.wait()
        } else {
            settle()
            pending = nil
            rows = try load(epoch: epoch)
        }
        reads = reads + rows.cost
        if let read = rows.data { data = read }
        order = rows.order
        localRanges = rows.localRanges
        preparedEpoch = epoch
    }

    /// Starts reading the rows of `epoch` on the read thread (`global` and `blocks` modes): a
    /// held epoch whole, a streamed one from its start once this epoch's reads are all asked
    /// for. The caller must not use HDF5 until `prepare` takes them or `settle` returns.
    func readAhead(epoch: Int) {
        guard mode != .local, preparedEpoch != epoch else { return }
        if case .streamed = residency(of: epoch) {
            streamedAhead = epoch
            startStreamedReadAhead()
            return
        }
        guard pending == nil else { return }
        pending = (epoch, PendingRead(on: readThread) { [self] in try load(epoch: epoch) })
    }

    /// Waits for the reads running or asked for (keeping their rows, or their errors, for
    /// whoever takes them): HDF5 is free for the caller.
    func settle() {
        let started = DispatchTime.now()
        readThread.waitUntilIdle()
        reads.seconds += DatasetReader.seconds(since: started)
    }

    /// Copies this rank's samples of `step` into the batch buffers; returns how many. A
    /// streamed epoch reads here, and may throw.
    func gather(
        step: Int, features x: UnsafeMutableBufferPointer<Float>, labels y: UnsafeMutableBufferPointer<Int32>,
        sampleIDs ids: UnsafeMutableBufferPointer<Int64>
    ) throws -> Int {
        if let streamed {
            let count = try streamed.gather(step: step, features: x, labels: y, sampleIDs: ids, shard: self)
            startStreamedReadAhead()
            return count
        }
        let positions = order[localRanges[step]]
        data.gather(positions, features: x, labels: y, sampleIDs: ids)
        return positions.count
    }

    /// The rows and step layout of `epoch`; reads the file except in `local` mode.
    private func load(epoch: Int) throws -> EpochRows {
        if mode != .local { try reader.checkUnchanged() }
        let before = reader.counters
        let steps = stepsPerEpoch
        var rows = EpochRows(data: nil, order: [], localRanges: [])
        switch mode {
        case .global:
            let indices: [Int]
            (indices, rows.localRanges) = plan.rows(seed: seed, epoch: epoch, rank: rank)
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
        case .local:
            if data.count == 0 && !shardRows.isEmpty { rows.data = try reader.read(split: .train, rows: shardRows) }
            let shard = rows.data ?? data
            var generator = Self.pieceGenerator(seed: seed, epoch: epoch, rank: rank)
            rows.order = Array(0..<shard.count)
            rows.order.shuffle(using: &generator)
            let b = localBatch(of: rank)
            for step in 0..<steps {
                rows.localRanges.append((step * b)..<((step + 1) * b))
            }
        }
        rows.cost = reader.counters - before
        rows.cost.seconds = 0
        return rows
    }

    /// The order in which a rank visits its shard (`local`) or piece (`blocks`) in `epoch`.
    static func pieceGenerator(seed: UInt64, epoch: Int, rank: Int) -> SeededGenerator {
        SeededGenerator(seed: seed, stream: 0x4C4F_4341 &+ UInt64(epoch) &* 0x1_0000 &+ UInt64(rank))
    }

    /// Samples in the global batch of `step`, over all ranks: N of the loss.
    func globalCount(step: Int) -> Int { mode == .local ? globalBatch : plan.globalRange(step: step).count }

    /// The most samples this rank has in one step.
    var maxLocalBatch: Int {
        mode == .local ? localBatch(of: rank) : plan.maxLocalBatch
    }
}
