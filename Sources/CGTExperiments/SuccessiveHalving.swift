import CGTJob
import Foundation

/// Asynchronous successive halving (ASHA; Li et al., "A System for Massively Parallel
/// Hyperparameter Tuning", MLSys 2020), in its stopping form as Ray Tune's `ASHAScheduler`
/// runs it: every trial trains, and at each rung (an epoch) its score on the grid's metric is
/// compared with the scores other trials recorded at that rung before it. A trial below the
/// top 1/eta of those stops there; the first to reach a rung always goes on. No trial waits
/// for another, so groups of ranks stay busy, and the decisions depend on the order in which
/// trials reach the rungs.
public struct SuccessiveHalving: Equatable, Codable, Sendable {
    /// Epochs at which trials are compared, ascending, when the grid file gives them; else
    /// `minEpochs * eta^k` below each trial's last epoch.
    public var givenRungs: [Int]?
    /// The first rung when the rungs are not given (Ray Tune's grace period).
    public var minEpochs: Int
    /// A rung keeps the best 1/eta of the trials recorded there.
    public var eta: Int

    enum CodingKeys: String, CodingKey {
        case givenRungs = "rungs"
        case minEpochs = "min_epochs"
        case eta
    }

    public init(rungs: [Int]? = nil, minEpochs: Int = 1, eta: Int = 3) {
        givenRungs = rungs
        self.minEpochs = minEpochs
        self.eta = eta
    }

    /// The rungs of a trial of `epochs` epochs: those before its last epoch, whose final
    /// evaluation decides instead. For 100 epochs, eta 3 and min_epochs 4: 4, 12 and 36.
    public func rungs(forEpochs epochs: Int) -> [Int] {
        if let givenRungs { return givenRungs.filter { $0 < epochs } }
        var rungs: [Int] = []
        var rung = minEpochs
        while rung < epochs {
            rungs.append(rung)
            rung *= eta
        }
        return rungs
    }

    /// The score a trial must reach at a rung where `recorded` are the other trials' scores:
    /// the (1 - 1/eta) quantile of them (for a metric where lower is better, the 1/eta
    /// quantile), with linear interpolation between order statistics (NumPy's default); nil
    /// when nothing is recorded, so the first trial at a rung goes on.
    public func cutoff(recorded: [Double], metric: SelectionMetric) -> Double? {
        let sorted = recorded.filter { !$0.isNaN }.sorted()
        guard !sorted.isEmpty else { return nil }
        let keep = 1 / Double(eta)
        let quantile = metric.lowerIsBetter ? keep : 1 - keep
        let position = quantile * Double(sorted.count - 1)
        let below = Int(position.rounded(.down))
        let above = min(below + 1, sorted.count - 1)
        return sorted[below] + (sorted[above] - sorted[below]) * (position - Double(below))
    }

    /// Whether a trial scoring `value` at a rung goes on, given the scores recorded there before it.
    public func continues(_ value: Double, recorded: [Double], metric: SelectionMetric) -> Bool {
        guard let cutoff = cutoff(recorded: recorded, metric: metric) else { return true }
        guard !value.isNaN else { return false }
        return metric.lowerIsBetter ? value <= cutoff : value >= cutoff
    }
}
