import CGTData
import CGTJob
import CGTRandom
import Dispatch

/// A streamed epoch: a rank whose piece does not fit holds a bounded part of it.
///
/// `blocks`: the piece's stream (its blocks in the epoch's permuted order, `PieceStream`)
/// passes through a `ShuffleBuffer` of `bufferRows` slots, and each step takes its samples
/// from the buffer; the batches are a function of (seed, epoch, R, buffer rows, the file's
/// chunk rows). A buffer holding fewer than 32 chunks permutes parts of chunks instead
/// (`streamedBlockPlan`). `global`: the rank's rows of the epoch, in the order of its steps
/// (`BatchPlan`), are read a segment at a time, so the batches are exactly those of a held
/// epoch, and of one rank. Either way the rank holds the buffer and a segment or two
/// (`SegmentFeed`), and at an epoch's end the next epoch's first fill.
final class StreamedEpoch {
    let epoch: Int
    /// Where each step's samples are: stream positions (`global`), or how many (`blocks`).
    let localRanges: [Range<Int>]
    private let source: Source
    /// `blocks`: the buffer now (mutated in place, step by step).
    private var buffer: ShuffleBuffer?
    private var feed: SegmentFeed
    private let segmentRows: Int
    /// The step `gather` expects next (another one is reached by replaying, on resume).
    private var nextStep = 0
    /// Reused by every step.
    private var takenSlots: [Int] = []
    private var refills: [ShuffleBuffer.Refill] = []

    /// How the steps take the stream.
    enum Source {
        /// `global`: the rank's rows of the epoch, in step order.
        case inOrder(rows: [Int])
        /// `blocks`: the piece's stream through a shuffle buffer, which a seek replays from `start`.
        case shuffled(stream: PieceStream, start: ShuffleBuffer)
    }

    init(epoch: Int, shard: TrainingShard, bufferRows: Int, segmentRows: Int) {
        self.epoch = epoch
        self.segmentRows = segmentRows
        switch shard.mode {
        case .global:
            let (rows, ranges) = shard.plan.rows(seed: shard.seed, epoch: epoch, rank: shard.rank)
            localRanges = ranges
            source = .inOrder(rows: rows)
            feed = Self.feed(rows: rows.count, from: 0, segmentRows: segmentRows, shard: shard) { rows[$0] }
        case .blocks, .local:
            precondition(shard.mode == .blocks, "a local shard is held, not streamed")
            let capacity = max(bufferRows, shard.maxLocalBatch)
            let plan = shard.streamedBlockPlan(bufferRows: capacity)
            let stream = plan.pieceStream(seed: shard.seed, epoch: epoch, rank: shard.rank)
            localRanges = plan.stepRanges(rank: shard.rank)
            // A step takes all its samples from the buffer at once: it holds at least a step.
            let buffer = ShuffleBuffer(
                capacity: capacity, streamCount: stream.count,
                generator: TrainingShard.pieceGenerator(seed: shard.seed, epoch: epoch, rank: shard.rank))
            source = .shuffled(stream: stream, start: buffer)
            self.buffer = buffer
            refills = buffer.initialFill
            feed = Self.feed(rows: stream.count, from: 0, segmentRows: segmentRows, shard: shard) {
                stream.row(at: $0)
            }
        }
    }

    /// A feed of the stream from position `start`, reading the rows `row` maps positions to;
    /// each read first checks that the file is unchanged.
    private static func feed(
        rows count: Int, from start: Int, segmentRows: Int, shard: TrainingShard, row: @escaping (Int) -> Int
    ) -> SegmentFeed {
        SegmentFeed(count: count, segmentRows: segmentRows, from: start, thread: shard.readThread) { range in
            try shard.readCounted(rows: range.map(row))
        }
    }

    /// Waits for the epoch's first segment: a run's first epoch is checked before the run
    /// writes anything, as far as streaming allows (a bad chunk later in it is found when read).
    func awaitFirstSegment() throws {
        if feed.count > 0 { _ = try feed.segment(containing: 0) }
    }

    /// Reads ahead as many segments as the buffer's first fill takes (the next epoch's, while
    /// this one drains its buffer), or one.
    func readAhead(fill: Bool) {
        guard case .shuffled(_, let start) = source else { return }
        feed.depth = fill ? max(1, (start.capacity + segmentRows - 1) / segmentRows) : 1
    }

    /// Whether every read of the epoch has been asked of the read thread.
    var hasAskedForEveryRead: Bool { feed.hasAskedForTheLast }

    /// What the reads taken so far cost (and the loop's waits for them), since last asked.
    func takeCost() -> DataReadCounters { feed.takeCost() }

    /// Copies this rank's samples of `step` into the batch buffers; returns how many.
    func gather(
        step: Int, features x: UnsafeMutableBufferPointer<Float>, labels y: UnsafeMutableBufferPointer<Int32>,
        sampleIDs ids: UnsafeMutableBufferPointer<Int64>, shard: TrainingShard
    ) throws -> Int {
        if step != nextStep { try seek(to: step, shard: shard) }
        nextStep = step + 1
        let width = shard.featureCount
        let count = localRanges[step].count
        precondition(x.count >= count * width && y.count >= count && ids.count >= count, "batch buffers too small")
        switch source {
        case .inOrder:
            let first = localRanges[step].lowerBound
            try feed.forEachSample(count, at: { first + $0 }) { row, features, label, id in
                (x.baseAddress! + row * width).update(from: features, count: width)
                y[row] = label
                ids[row] = id
            }
        case .shuffled(_, let start):
            let slots = shard.slotStorage(rows: start.capacity)
            // The slots the last step emptied (or the first fill) take the stream's next samples.
            try refills.withUnsafeBufferPointer { refills in
                try feed.forEachSample(refills.count, at: { refills[$0].position }) { i, features, label, id in
                    slots.store(features, label: label, id: id, inSlot: refills[i].slot)
                }
            }
            buffer!.take(count, slots: &takenSlots, refills: &refills)
            for (row, slot) in takenSlots.enumerated() {
                slots.copySlot(slot, to: row, features: x, labels: y, sampleIDs: ids)
            }
        }
        return count
    }

    /// Puts the epoch where it stands before `step` (a run resumed mid-epoch): the buffer
    /// replayed from the epoch's start, its samples read back, the feed started after them.
    private func seek(to step: Int, shard: TrainingShard) throws {
        shard.settle()
        switch source {
        case .inOrder(let rows):
            let start = step < localRanges.count ? localRanges[step].lowerBound : rows.count
            feed = Self.feed(rows: rows.count, from: start, segmentRows: segmentRows, shard: shard) { rows[$0] }
        case .shuffled(let stream, let start):
            var buffer = start
            for earlier in 0..<step { buffer.take(localRanges[earlier].count, slots: &takenSlots, refills: &refills) }
            let held = buffer.heldRefills
            let read = PendingRead(on: shard.readThread) {
                try shard.readCounted(rows: held.map { stream.row(at: $0.position) })
            }
            let (data, cost) = try read.wait()
            shard.reads = shard.reads + cost
            let slots = shard.slotStorage(rows: buffer.capacity)
            data.features.withUnsafeBufferPointer { features in
                for (index, refill) in held.enumerated() {
                    slots.store(
                        features.baseAddress! + index * data.featureCount, label: data.labels[index],
                        id: data.sampleIDs[index], inSlot: refill.slot)
                }
            }
            refills = []
            self.buffer = buffer
            feed = Self.feed(
                rows: stream.count, from: buffer.nextPosition, segmentRows: segmentRows, shard: shard
            ) { stream.row(at: $0) }
        }
    }
}

/// One row of samples per slot of a shuffle buffer: features, label and id, allocated once
/// (the copies in and out are the streamed epoch's inner loop).
final class SlotStorage {
    let rows: Int
    let width: Int
    private let features: UnsafeMutableBufferPointer<Float>
    private let labels: UnsafeMutableBufferPointer<Int32>
    private let sampleIDs: UnsafeMutableBufferPointer<Int64>

    init(rows: Int, width: Int) {
        self.rows = rows
        self.width = width
        features = .allocate(capacity: rows * width)
        features.initialize(repeating: 0)
        labels = .allocate(capacity: rows)
        labels.initialize(repeating: 0)
        sampleIDs = .allocate(capacity: rows)
        sampleIDs.initialize(repeating: 0)
    }

    deinit {
        features.deallocate()
        labels.deallocate()
        sampleIDs.deallocate()
    }

    /// Copies one sample (its row of features, label and id) into `slot`.
    func store(_ row: UnsafePointer<Float>, label: Int32, id: Int64, inSlot slot: Int) {
        (features.baseAddress! + slot * width).update(from: row, count: width)
        labels[slot] = label
        sampleIDs[slot] = id
    }

    /// Copies `slot` into row `row` of the batch buffers.
    func copySlot(
        _ slot: Int, to row: Int, features x: UnsafeMutableBufferPointer<Float>,
        labels y: UnsafeMutableBufferPointer<Int32>, sampleIDs ids: UnsafeMutableBufferPointer<Int64>
    ) {
        (x.baseAddress! + row * width).update(from: features.baseAddress! + slot * width, count: width)
        y[row] = labels[slot]
        ids[row] = sampleIDs[slot]
    }
}

extension TrainingShard {
    /// What a rank holds of `epoch`, in one line for rank 0 to say.
    func residencyLine(epoch: Int) -> String {
        residency(of: epoch).description(mode: mode, pieceRows: pieceRows, featureCount: featureCount)
    }

    /// What streaming costs with this file, if it costs more than reading once: a split in one
    /// chunk (nothing to permute: each piece streams in file order), or a buffer holding
    /// fewer than 32 chunks (they are read in parts, each decompressed several times).
    var streamingWarning: String? {
        guard mode == .blocks, case .streamed(let bufferRows) = residency, let blockPlan else { return nil }
        let chunk = blockPlan.blockRows
        let ruleRows = ruleChunkRows
        if blockPlan.blockCount == 1 {
            return
                "\(reader.path): /train/x is one chunk of \(chunk) rows: streamed, each rank's piece passes through its shuffle buffer of \(bufferRows) in file order every epoch; rewrite it in chunks of \(ruleRows) rows (\(rechunkCommand(rows: ruleRows))) so the chunks are permuted"
        }
        let parts = streamedBlockPlan(bufferRows: max(bufferRows, maxLocalBatch)).blockRows
        guard parts < chunk else { return nil }
        return
            "training.shuffle_buffer of \(bufferRows) samples holds fewer than \(Self.blocksPerBuffer) of \(reader.path)'s chunks of \(chunk) rows: so that a batch draws from as many stretches of the file, they are read in parts of \(parts) rows, each chunk decompressed \((chunk + parts - 1) / parts) times per epoch; a larger buffer, or chunks of \(parts) rows (\(rechunkCommand(rows: parts))), reads each once"
    }

    /// The blocks a streamed `blocks` epoch permutes: the file's chunks where a buffer of
    /// `bufferRows` holds at least 32 of them, else parts of chunks of `bufferRows / 32` rows.
    ///
    /// A batch draws from the blocks the buffer holds; whole chunks of a file stored in a
    /// meaningful order (pixels in scan order, records by time) then put few stretches of the
    /// file in a batch (`cgt bench --data FILE --shuffle-quality` measures it). Parts of chunks
    /// keep about 32 stretches in the buffer, at the price of decompressing each chunk
    /// `chunkRows / blockRows` times per epoch, which the epoch's read counters show.
    func streamedBlockPlan(bufferRows: Int) -> BlockShufflePlan {
        let chunkRows = blockPlan!.blockRows
        let blockRows = max(1, min(chunkRows, bufferRows / Self.blocksPerBuffer))
        guard blockRows < chunkRows else { return blockPlan! }
        return BlockShufflePlan(sampleCount: sampleCount, globalBatch: globalBatch, blockRows: blockRows, ranks: ranks)
    }

    /// The blocks a shuffle buffer should hold at least (`streamedBlockPlan`): 32 measured
    /// within about 0.01 of a uniform permutation's label distance on Indian Pines (RESULTS.md).
    static let blocksPerBuffer = 32

    /// A new streamed epoch, its first segment asked of the read thread.
    func makeStreamedEpoch(_ epoch: Int) -> StreamedEpoch {
        let residency = residency(of: epoch)
        return StreamedEpoch(
            epoch: epoch, shard: self, bufferRows: residency.bufferRows, segmentRows: residency.segmentRows(mode: mode))
    }

    /// The shuffle buffer's slots, made at the first streamed epoch (again if a resumed
    /// epoch's buffer differs in size).
    func slotStorage(rows: Int) -> SlotStorage {
        if let slotStorage, slotStorage.rows == rows { return slotStorage }
        slotStorage = nil
        let storage = SlotStorage(rows: rows, width: featureCount)
        slotStorage = storage
        return storage
    }

    /// Starts the epoch `readAhead` asked for once this epoch's reads are all asked for: the
    /// read thread is then free, and reads the next epoch's first fill while this epoch's
    /// buffer drains (a rank then holds up to about 2.25 buffers).
    func startStreamedReadAhead() {
        guard let epoch = streamedAhead, nextStreamed == nil, streamed?.hasAskedForEveryRead ?? true else { return }
        streamedAhead = nil
        let next = makeStreamedEpoch(epoch)
        // Its first fill is read while this epoch's buffer drains, not at its first step.
        next.readAhead(fill: true)
        nextStreamed = next
    }
}
