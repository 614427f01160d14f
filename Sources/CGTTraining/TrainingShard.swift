import CGTData
import CGTEvaluation
import CGTJob
import CGTKernels
import CGTRandom
import Dispatch

/// The training samples one rank needs, epoch by epoch, and its part of every step.
///
/// `global` mode (the default) reads, at the start of each epoch, exactly the rows of this
/// rank's part of every global batch of the epoch (see `BatchPlan`): N ranks see the batches
/// of 1 rank, and each rank holds about 1/N of the split. `local` mode reads one contiguous
/// shard `[r N / R, (r + 1) N / R)` once and shuffles within it from (seed, epoch, rank); each
/// rank takes its share of the global batch from its own shard, every step has a full global
/// batch, and the tail of a shard that does not fill a local batch is left out of that epoch
/// (a different tail each epoch).
final class TrainingShard {
    let reader: DatasetReader
    let rank: Int
    let ranks: Int
    let seed: UInt64
    let globalMode: Bool
    let sampleCount: Int
    let globalBatch: Int
    private let plan: BatchPlan
    private(set) var data: DatasetSplit
    private var order: [Int] = []
    private var localRanges: [Range<Int>] = []
    private var globalCounts: [Int] = []
    private let shardRows: Range<Int>
    /// What reading rows cost since `takeReads()` was last called; the seconds are the time the
    /// loop waited (the whole of `prepare`, or of the shard's one read in `local` mode).
    private var reads = DataReadCounters()

    init(reader: DatasetReader, rank: Int, ranks: Int, seed: UInt64, globalBatch: Int, mode: ShuffleMode) throws {
        self.reader = reader
        self.rank = rank
        self.ranks = ranks
        self.seed = seed
        self.globalBatch = globalBatch
        globalMode = mode == .global
        sampleCount = reader.splitSizes[DatasetLayout.train] ?? 0
        plan = BatchPlan(sampleCount: sampleCount, globalBatch: globalBatch, ranks: ranks)
        shardRows = (rank * sampleCount / ranks)..<((rank + 1) * sampleCount / ranks)
        let started = DispatchTime.now()
        let before = reader.counters
        data =
            globalMode
            ? DatasetSplit(
                name: DatasetLayout.train, features: [], labels: [], sampleIDs: [], featureShape: reader.featureShape)
            : try reader.read(split: DatasetLayout.train, rows: shardRows)
        record(since: started, before: before)
    }

    /// Adds the bytes `reader` counted since `before` and the time since `started` to `reads`.
    private func record(since started: DispatchTime, before: DataReadCounters) {
        var spent = reader.counters - before
        spent.seconds = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
        reads = reads + spent
    }

    /// The reads since the last call (the epoch's, when called once per epoch), and starts anew.
    func takeReads() -> DataReadCounters {
        defer { reads = DataReadCounters() }
        return reads
    }

    /// The local batch size of rank r in `local` mode: the global batch split as evenly as possible.
    private func localBatch(of r: Int) -> Int { Self.localBatch(of: r, globalBatch: globalBatch, ranks: ranks) }

    private static func localBatch(of r: Int, globalBatch: Int, ranks: Int) -> Int {
        globalBatch * (r + 1) / ranks - globalBatch * r / ranks
    }

    var stepsPerEpoch: Int {
        Self.stepsPerEpoch(
            sampleCount: sampleCount, globalBatch: globalBatch, ranks: ranks, mode: globalMode ? .global : .local)
    }

    /// Optimizer steps per epoch for a split of `sampleCount` (known before any row is read).
    static func stepsPerEpoch(sampleCount: Int, globalBatch: Int, ranks: Int, mode: ShuffleMode) -> Int {
        switch mode {
        case .global:
            return BatchPlan(sampleCount: sampleCount, globalBatch: globalBatch, ranks: ranks).stepsPerEpoch
        case .local:
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

    /// Loads (global mode) or reshuffles (local mode) the samples of `epoch`; nothing if done already.
    func prepare(epoch: Int) throws {
        guard preparedEpoch != epoch else { return }
        preparedEpoch = nil
        let started = DispatchTime.now()
        let before = reader.counters
        defer { record(since: started, before: before) }
        let steps = stepsPerEpoch
        localRanges.removeAll(keepingCapacity: true)
        globalCounts.removeAll(keepingCapacity: true)
        if globalMode {
            let rows: [Int]
            (rows, localRanges) = plan.rows(seed: seed, epoch: epoch, rank: rank)
            globalCounts = (0..<steps).map { plan.globalRange(step: $0).count }
            data = try reader.read(split: DatasetLayout.train, rowIndices: rows)
            order = Array(0..<rows.count)
        } else {
            var generator = SeededGenerator(
                seed: seed, stream: 0x4C4F_4341 &+ UInt64(epoch) &* 0x1_0000 &+ UInt64(rank))
            order = Array(0..<data.count)
            order.shuffle(using: &generator)
            let b = localBatch(of: rank)
            for step in 0..<steps {
                localRanges.append((step * b)..<((step + 1) * b))
                globalCounts.append(globalBatch)
            }
        }
        preparedEpoch = epoch
    }

    /// Positions in `data` of this rank's samples in `step`.
    func positions(step: Int) -> ArraySlice<Int> { order[localRanges[step]] }

    /// Samples in the global batch of `step`, over all ranks: N of the loss.
    func globalCount(step: Int) -> Int { globalCounts[step] }

    /// The most samples this rank has in one step.
    var maxLocalBatch: Int {
        globalMode ? plan.maxLocalBatch : localBatch(of: rank)
    }
}
