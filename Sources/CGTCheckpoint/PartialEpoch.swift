import CGTModel

/// Where a stop signal left an epoch: the steps of it already taken, by how many ranks, and
/// what they added up so far, so the resumed epoch's metrics line counts every step once.
///
/// Stored in a checkpoint a stop made mid-epoch (`checkpoints/interrupted.h5`) as the
/// attributes `epoch_step`, `epoch_ranks`, `epoch_buffer_rows` and `epoch_partial` (the
/// statistics flattened, then samples and learning rate).
public struct PartialEpoch: Equatable, Sendable {
    /// Steps of the epoch taken (at least 1; a checkpoint at an epoch's end has no partial epoch).
    public var step: Int
    /// The ranks that took them: with `training.shuffle: local` the steps of an epoch depend on
    /// the number of ranks, so the epoch resumes on as many.
    public var ranks: Int
    /// The shuffle buffer each rank streamed the epoch through (0: each held its piece whole):
    /// the rest of the epoch replays it, for the same batches. Checkpoints written before
    /// streaming have none, and held their pieces.
    public var bufferRows: Int
    /// The epoch's statistics so far, summed over ranks.
    public var statistics: ExitObjective.Statistics
    /// Samples trained on so far, over all ranks.
    public var samples: Int
    /// The learning rate of the last step taken.
    public var learningRate: Float

    public init(
        step: Int, ranks: Int, bufferRows: Int = 0, statistics: ExitObjective.Statistics, samples: Int,
        learningRate: Float
    ) {
        self.step = step
        self.ranks = ranks
        self.bufferRows = bufferRows
        self.statistics = statistics
        self.samples = samples
        self.learningRate = learningRate
    }

    /// The `epoch_partial` attribute's values.
    var flattened: [Double] { statistics.flattened + [Double(samples), Double(learningRate)] }

    /// Reads `epoch_partial` back; nil when `values` are not one epoch's statistics for `exits` exits.
    init?(step: Int, ranks: Int, bufferRows: Int, flattened values: [Double], exits: Int) {
        let count = ExitObjective.Statistics(exits: exits).flattened.count
        guard step > 0, ranks > 0, bufferRows >= 0, values.count == count + 2,
            values.allSatisfy({ $0.isFinite && abs($0) < 1e15 })
        else { return nil }
        self.init(
            step: step, ranks: ranks, bufferRows: bufferRows,
            statistics: ExitObjective.Statistics(flattened: Array(values.prefix(count))),
            samples: Int(values[count]), learningRate: Float(values[count + 1]))
    }
}
