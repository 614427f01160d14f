import CGTData
import CGTJob
import CGTKernels
import CGTModel

/// The ranks an evaluation is sharded over, as the layer that owns them provides them: the
/// sums and gathers its results need. Training's data-parallel strategy is one (MPI under a
/// stall watch); `OneProcess` is the other. Evaluation itself never sees MPI.
public protocol EvaluationRanks {
    var rank: Int { get }
    /// The number of ranks.
    var ranks: Int { get }
    /// Whether other ranks take part: one process has nothing to sum or gather.
    var hasOtherRanks: Bool { get }
    /// Runs `body`, local work that can fail on one rank alone, and agrees: a failure on any
    /// rank fails every rank, before any of them enters a collective that would wait for it.
    func agree<R>(_ body: () throws -> R) throws -> R
    /// Sums `values` over the ranks, in place.
    func sumCounts(_ values: inout [Int64]) throws
    /// Every rank's bytes, in rank order, on every rank.
    func gather(bytes: [UInt8]) throws -> [[UInt8]]
    /// What BatchNorm layers sum their batch statistics with while they re-estimate them over
    /// the ranks' shares of one global batch (nil with one rank: local statistics are global).
    var batchNormReducer: BatchNormKernels.StatisticsReducer? { get }
}

/// One process: nothing to sum or gather.
public struct OneProcess: EvaluationRanks {
    public init() {}
    public var rank: Int { 0 }
    public var ranks: Int { 1 }
    public var hasOtherRanks: Bool { false }
    public func agree<R>(_ body: () throws -> R) throws -> R { try body() }
    public func sumCounts(_ values: inout [Int64]) throws {}
    public func gather(bytes: [UInt8]) throws -> [[UInt8]] { [bytes] }
    public var batchNormReducer: BatchNormKernels.StatisticsReducer? { nil }
}

/// Early-exit evaluation sharded over ranks, for training's own evaluation and for `cgt eval`
/// alike: each rank scores its contiguous share of a split, block by block when it is larger
/// than a block (`SplitShare`), and the counts are summed (or the per-sample records
/// gathered), so any number of ranks, and any block size, reports what one process scoring
/// the split whole would.
public struct DistributedEvaluation {
    public let network: EarlyExitNetwork
    public let ranks: EvaluationRanks
    let evaluator: Evaluator
    /// Inference batches per block of a streamed share (`EvaluationBlock`); tests set fewer.
    public var blockBatches: Int

    public init(network: EarlyExitNetwork, ranks: EvaluationRanks, batchSize: Int, classGroups: ClassGroups?) {
        self.network = network
        self.ranks = ranks
        evaluator = Evaluator(network: network, batchSize: batchSize, classGroups: classGroups)
        blockBatches = EvaluationBlock.rows(featureCount: network.inputCount, batchSize: batchSize) / batchSize
    }

    /// Samples per block of a streamed share: whole batches, so blocks change no number.
    public var blockRows: Int { max(1, blockBatches) * evaluator.batchSize }

    /// This rank's share of `split`: held when it fits one block (read now), else streamed.
    /// Local work that can fail on one rank alone.
    public func share(of split: DatasetSplitName, reader: DatasetReader) throws -> SplitShare {
        try SplitShare.of(split, reader: reader, rank: ranks.rank, ranks: ranks.ranks, blockRows: blockRows)
    }

    /// Re-estimates the BatchNorm running statistics over the global batches of `share`, with
    /// statistics summed over ranks; the layers' reducers are left unset afterwards.
    public func recalibrateBatchNorm(on share: RecalibrationShare) {
        network.setBatchNormReducer(ranks.batchNormReducer)
        evaluator.recalibrateBatchNorm(on: share.data, batches: share.batches)
        network.setBatchNormReducer(nil)
    }

    /// Routing statistics at `tau` of the split whose share on this rank is `share`: counted
    /// block by block, so a streamed share costs one block of memory, records included.
    public func statistics(_ share: SplitShare, tau: Float) throws -> RoutingStatistics {
        let policy = ExitPolicy.uniform(tau, exits: network.exitCount)
        let empty = RoutingTally(exits: network.exitCount, classes: network.classes)
        var counts = try ranks.agree {
            var counts = empty.flattened
            try forEachBlock(of: share) { block in
                for (i, count) in evaluator.records(block).tally(policy).flattened.enumerated() { counts[i] += count }
            }
            return counts
        }
        if ranks.hasOtherRanks { try ranks.sumCounts(&counts) }
        return RoutingTally(exits: empty.exits, classes: empty.classes, flattened: counts).statistics(
            tau: tau, exitFLOPs: network.exitCosts(), fullNetworkFLOPs: network.fullNetworkCost)
    }

    /// Routing statistics at `tau` of the split whose share on this rank, in memory, is `split`.
    public func statistics(_ split: DatasetSplit, tau: Float) throws -> RoutingStatistics {
        try statistics(.held(split), tau: tau)
    }

    /// Every sample's exit records of the split whose share on this rank is `share`, in rank order.
    public func records(_ share: SplitShare) throws -> ExitRecords {
        let mine = try ranks.agree { try localRecords(share) }
        guard ranks.hasOtherRanks else { return mine }
        var records = ExitRecords(exits: network.exitCount, classes: network.classes)
        for bytes in try ranks.gather(bytes: mine.serialized) { records.append(serialized: bytes) }
        return records
    }

    /// This rank's records of `share`, in order.
    func localRecords(_ share: SplitShare) throws -> ExitRecords {
        var records = ExitRecords(exits: network.exitCount, classes: network.classes)
        try forEachBlock(of: share) { evaluator.append($0, to: &records) }
        return records
    }

    /// Runs `body` on the samples of `share` in order: a held share at once, a streamed one a
    /// block of `blockRows` at a time, read as it comes.
    func forEachBlock(of share: SplitShare, _ body: (DatasetSplit) throws -> Void) throws {
        switch share {
        case .held(let data):
            try body(data)
        case .streamed(let reader, let split, let rows):
            for start in stride(from: rows.lowerBound, to: rows.upperBound, by: blockRows) {
                try body(try reader.read(split: split, rows: start..<min(rows.upperBound, start + blockRows)))
            }
        }
    }
}

extension EarlyExitNetwork {
    /// Gives every BatchNorm layer `reduce` for its batch statistics (nil: local statistics).
    public func setBatchNormReducer(_ reduce: BatchNormKernels.StatisticsReducer?) {
        for layer in batchNormLayers { layer.statisticsReducer = reduce }
    }
}

/// What an evaluation asks beyond the routing of the test split at one exit policy.
public struct EvaluationRequest {
    public var policy: ExitPolicy
    /// Thresholds to sweep at every exit (nil: no sweep, unless a goal needs one).
    public var sweep: [Float]?
    /// Choose the cheapest threshold reaching this accuracy, on validation or training data.
    public var targetAccuracy: Double?
    /// Choose the most accurate threshold within this relative cost, on validation or training data.
    public var budget: Double?
    /// Choose the cheapest threshold whose accuracy loss against the full network is certified
    /// on the validation split (`RiskControl`); with `riskResplits` > 0, also check the
    /// guarantee on that many random halvings of the test split.
    public var risk: RiskControl?
    public var riskResplits: Int
    /// MSDNet's budgeted protocol with its area over this relative-cost range (`BudgetedCurve`).
    public var budgeted: ClosedRange<Double>?

    public init(
        policy: ExitPolicy, sweep: [Float]? = nil, targetAccuracy: Double? = nil, budget: Double? = nil,
        risk: RiskControl? = nil, riskResplits: Int = 0, budgeted: ClosedRange<Double>? = nil
    ) {
        self.budgeted = budgeted
        self.policy = policy
        self.sweep = sweep
        self.targetAccuracy = targetAccuracy
        self.budget = budget
        self.risk = risk
        self.riskResplits = riskResplits
    }

    /// The sweep a goal falls back on when none is given.
    public static let defaultSweep = ThresholdSweep.range("0.5:0.99:0.01")!
}

extension DistributedEvaluation {
    /// The report of the test split under `request` (a collective; every rank gets it). A
    /// threshold a goal chooses is chosen on the validation split, or on the training split when
    /// the data has none, never on the test split.
    public func report(reader: DatasetReader, classNames: [String], request: EvaluationRequest) throws
        -> EvaluationReport
    {
        let choosing = request.targetAccuracy != nil || request.budget != nil
        let hasValidation = (reader.splitSizes[.validation] ?? 0) > 0
        let selectionSplit = hasValidation ? DatasetSplitName.validation : .train
        let needsSelection = choosing || request.risk != nil || request.budgeted != nil
        // Each rank's shares are read (and checked, block by block when streamed) and agreed
        // on before any records are gathered.
        let testShare = try ranks.agree { try share(of: .test, reader: reader) }
        var report = EvaluationReport(
            records: try records(testShare), policy: request.policy, exitFLOPs: network.exitCosts(),
            fullNetworkFLOPs: network.fullNetworkCost, classNames: classNames)
        let selection: ExitRecords? =
            needsSelection ? try records(try ranks.agree { try share(of: selectionSplit, reader: reader) }) : nil
        if request.sweep != nil || choosing {
            report.addSweep(
                taus: request.sweep ?? EvaluationRequest.defaultSweep, criterion: request.policy.criterion,
                fallback: request.policy.fallback, selection: choosing ? selection : nil,
                selectionSplit: selectionSplit, targetAccuracy: request.targetAccuracy, budget: request.budget)
        }
        if let risk = request.risk, let selection {
            // Training samples are no calibration set: the model has fitted them.
            guard hasValidation else {
                throw DatasetError(
                    file: reader.path, object: "/\(DatasetSplitName.validation.rawValue)",
                    "--risk needs a validation split the model was not trained on, to certify a threshold on (cgt prepare ... --validation-fraction 0.1)"
                )
            }
            report.addRiskControl(
                risk, taus: request.sweep ?? EvaluationRequest.defaultSweep, calibration: selection,
                resplits: request.riskResplits)
        }
        if let range = request.budgeted, let selection {
            report.budgeted = BudgetedCurve(
                calibration: selection, fittedOn: selectionSplit, test: report.testRecords,
                criterion: request.policy.criterion, exitFLOPs: network.exitCosts(),
                fullNetworkFLOPs: network.fullNetworkCost, range: range)
        }
        return report
    }
}
