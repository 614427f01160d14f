import CGTData
import CGTFiles

/// A rank's contiguous share of a held-out split (test, validation) as evaluation scores it:
/// held in memory when it fits in one evaluation block, else read block by block each time it
/// is scored, so that no evaluation holds more than one block of samples whatever the split's
/// size. Training keeps its shares for the whole run, which is what makes the rule matter.
public enum SplitShare {
    /// Read once; scored from memory.
    case held(DatasetSplit)
    /// Rows of a split of `reader`'s file, read a block at a time whenever scored.
    case streamed(DatasetReader, DatasetSplitName, rows: Range<Int>)

    /// Rank `rank`'s share of `split` among `ranks` (sizes differ by at most one), read now
    /// (and checked) when it has at most `blockRows` rows, else left to be streamed.
    public static func of(
        _ split: DatasetSplitName, reader: DatasetReader, rank: Int, ranks: Int, blockRows: Int
    ) throws -> SplitShare {
        let rows = reader.shareRows(of: split, rank: rank, of: ranks)
        guard rows.count > blockRows else { return .held(try reader.read(split: split, rows: rows)) }
        return .streamed(reader, split, rows: rows)
    }

    /// The samples of the share.
    public var count: Int {
        switch self {
        case .held(let data): data.count
        case .streamed(_, _, let rows): rows.count
        }
    }
}

/// How many samples one block of a streamed evaluation holds: whole inference batches, so the
/// batches (and therefore every number) are those of scoring the share whole, and within a
/// sixteenth of `MemoryBudget` for the features, but at least one batch. A block need not start
/// at a chunk boundary (a rank's share does not), so a chunk that straddles two blocks may be
/// decompressed twice: at most one extra chunk per block.
public enum EvaluationBlock {
    public static func rows(featureCount: Int, batchSize: Int, budget: Int = MemoryBudget.bytes) -> Int {
        let rowBytes = max(1, featureCount * MemoryLayout<Float>.size)
        let batches = budget / 16 / rowBytes / max(1, batchSize)
        return max(1, batches) * max(1, batchSize)
    }
}
