import CGTData
import CGTFiles
import CGTJob
import Foundation

/// How much of its piece of the training split a rank holds at once: the piece whole (read
/// each epoch, the next one read ahead) or a bounded buffer it streams through.
///
/// Decided once per run on rank 0 and broadcast, so every rank streams alike; a mid-epoch
/// checkpoint records it (`PartialEpoch.bufferRows`), and the resumed epoch replays the
/// residency it was stopped with, whatever this allocation's memory says.
enum ShardResidency: Equatable, Sendable {
    /// The piece whole: the batches of cgt before streaming, bit for bit.
    case held
    /// `blocks`: a shuffle buffer of `bufferRows` slots (`ShuffleBuffer`); `global`: the
    /// epoch's rows in order, in that much memory. Either reads its stream a segment at a
    /// time (`segmentRows`), one segment ahead.
    case streamed(bufferRows: Int)

    /// Bytes a rank holds per sample: float32 features, the label, the id, and the buffer's
    /// two position tables.
    static func rowBytes(featureCount: Int) -> Int { featureCount * 4 + 4 + 8 + 16 }

    /// The residency `size` gives a rank whose piece has `pieceRows` rows, or why none fits.
    ///
    /// A piece is held when two of it fit (the one trained on and the next epoch's, read
    /// ahead): `auto` allows a quarter of the memory limit (`CGT_MEMORY_LIMIT` is per process;
    /// the default, half the machine's memory, is shared by `ranksPerNode`). Otherwise the
    /// piece streams through a buffer of the rows that fit with two segments of an eighth of
    /// it. `local` mode holds its shard whole or refuses.
    static func choose(
        _ size: ShuffleBufferSize, mode: ShuffleMode, pieceRows: Int, featureCount: Int, ranksPerNode: Int
    ) throws -> ShardResidency {
        let rowBytes = rowBytes(featureCount: featureCount)
        let limit = MemoryBudget.bytes
        let budget: Int
        switch size {
        case .automatic:
            budget = (MemoryBudget.isSetByUser ? limit : limit / max(1, ranksPerNode)) / 4
        case .rows(let rows):
            let (bytes, overflow) = rows.multipliedReportingOverflow(by: rowBytes)
            budget = overflow ? Int.max : bytes * 5 / 4
        case .bytes(let bytes):
            budget = bytes
        }
        guard budget <= limit else {
            throw JobError(
                source: "job", key: "training.shuffle_buffer",
                "\(size) needs \(MemoryBudget.describe(budget)) per rank, more than the memory limit of \(MemoryBudget.describe(limit)) (CGT_MEMORY_LIMIT)"
            )
        }
        let fits: Bool
        switch size {
        case .automatic, .bytes: fits = 2 * pieceRows <= budget / rowBytes
        case .rows(let rows): fits = rows >= pieceRows
        }
        if fits || pieceRows == 0 { return .held }
        guard mode != .local else {
            throw JobError(
                source: "job", key: "training.shuffle",
                "local holds each rank's shard of \(pieceRows) samples (\(MemoryBudget.describe(pieceRows * rowBytes))) whole, more than training.shuffle_buffer \(size) allows; training.shuffle: blocks streams it"
            )
        }
        let bufferRows: Int
        if case .rows(let rows) = size {
            bufferRows = rows
        } else {
            bufferRows = max(1, budget * 4 / 5 / rowBytes)
        }
        return .streamed(bufferRows: bufferRows)
    }

    /// Rows read at a time: an eighth of the buffer beside a shuffle buffer, half of the
    /// memory without one (`global`): a rank holds about 1.25 buffers, and up to 2.25 at an
    /// epoch's end, while the next epoch's first fill is read ahead.
    func segmentRows(mode: ShuffleMode) -> Int {
        switch self {
        case .held: 0
        case .streamed(let rows): max(1, mode == .global ? rows / 2 : rows / 8)
        }
    }

    /// The ranks on this node, as the launcher tells (Open MPI, MPICH); else all `ranks`.
    static func ranksPerNode(ranks: Int) -> Int {
        let environment = ProcessInfo.processInfo.environment
        let local = ["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"].lazy.compactMap {
            environment[$0].flatMap(Int.init)
        }
        return max(1, local.first ?? ranks)
    }

    /// The buffer's rows as a checkpoint records them (0: held).
    var bufferRows: Int {
        switch self {
        case .held: 0
        case .streamed(let rows): rows
        }
    }

    /// The residency a checkpoint's `bufferRows` names.
    init(bufferRows: Int) {
        self = bufferRows > 0 ? .streamed(bufferRows: bufferRows) : .held
    }

    /// The line rank 0 says once: what a rank holds.
    func description(mode: ShuffleMode, pieceRows: Int, featureCount: Int) -> String {
        let rowBytes = Self.rowBytes(featureCount: featureCount)
        switch self {
        case .held:
            return
                "training data: each rank holds its piece of \(pieceRows) samples (\(MemoryBudget.describe(pieceRows * rowBytes))), and reads the next epoch's ahead"
        case .streamed(let bufferRows):
            let segmentRows = segmentRows(mode: mode)
            let how =
                mode == .global
                ? "reads its \(pieceRows) samples of each epoch in order, \(segmentRows) at a time"
                : "streams its piece of \(pieceRows) samples through a shuffle buffer of \(bufferRows) (\(MemoryBudget.describe(bufferRows * rowBytes))), reading \(segmentRows) at a time"
            return "training data: each rank \(how) (training.shuffle_buffer)"
        }
    }
}
