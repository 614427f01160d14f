import CGTModel

/// Early-exit accuracy against cost over a range of thresholds (one threshold at every exit),
/// with the Pareto-optimal points and the thresholds that meet a target.
public struct ThresholdSweep: Codable, Equatable, Sendable {
    public struct Point: Codable, Equatable, Sendable {
        public var threshold: Double
        public var accuracy: Double
        public var macroF1: Double
        public var relativeCost: Double
        public var exitFractions: [Double]
        /// No other point is at least as accurate and at least as cheap, and better in one of them.
        public var paretoOptimal: Bool

        enum CodingKeys: String, CodingKey {
            case threshold, accuracy
            case macroF1 = "macro_f1"
            case relativeCost = "relative_cost"
            case exitFractions = "exit_fractions"
            case paretoOptimal = "pareto_optimal"
        }
    }

    public var criterion: ExitCriterion
    public var points: [Point]

    /// Routes `records` at every threshold in `thresholds` under `criterion` and `fallback`.
    public init(
        records: ExitRecords, thresholds: [Float], criterion: ExitCriterion, fallback: ExitFallback,
        exitFLOPs: [Int], fullNetworkFLOPs: Int
    ) {
        self.criterion = criterion
        var points = thresholds.map { tau -> Point in
            let policy = ExitPolicy.uniform(tau, exits: records.exits, criterion: criterion, fallback: fallback)
            let s = records.tally(policy).statistics(tau: tau, exitFLOPs: exitFLOPs, fullNetworkFLOPs: fullNetworkFLOPs)
            return Point(
                threshold: Double(tau), accuracy: s.accuracy, macroF1: s.macroF1, relativeCost: s.relativeCost,
                exitFractions: s.exitFractions, paretoOptimal: false)
        }
        for (i, optimal) in paretoOptimal(points.map { ($0.accuracy, $0.relativeCost) }).enumerated() {
            points[i].paretoOptimal = optimal
        }
        self.points = points
    }

    /// The cheapest point with at least `accuracy` (the lowest threshold among equally cheap ones).
    public func cheapest(reaching accuracy: Double) -> Point? {
        points.filter { $0.accuracy >= accuracy }.min {
            ($0.relativeCost, $0.threshold) < ($1.relativeCost, $1.threshold)
        }
    }

    /// The most accurate point costing at most `budget` (relative cost; the cheaper among equally accurate ones).
    public func mostAccurate(within budget: Double) -> Point? {
        points.filter { $0.relativeCost <= budget }.max {
            ($0.accuracy, -$0.relativeCost) < ($1.accuracy, -$1.relativeCost)
        }
    }

    /// The thresholds `start`, `start + step`, ... up to `stop` (inclusive), parsed from "start:stop:step".
    public static func range(_ text: String) -> [Float]? {
        let parts = text.split(separator: ":").compactMap { Double($0) }
        guard parts.count == 3, parts[2] > 0, parts[1] >= parts[0], parts[0] >= 0, parts[1] <= 1,
            (parts[1] - parts[0]) / parts[2] < 100_000
        else { return nil }
        return steps(from: parts[0], through: parts[1], by: parts[2]).map { Float(($0 * 1e9).rounded() / 1e9) }
    }

    /// The sweep as CSV: threshold, accuracy, macro F1, relative cost, Pareto flag, fraction per exit.
    public var csv: String {
        let exits = points.first?.exitFractions.count ?? 0
        var lines = [
            (["threshold", "accuracy", "macro_f1", "relative_cost", "pareto_optimal"]
                + (0..<exits).map { "exit\($0 + 1)_fraction" }).joined(separator: ",")
        ]
        for p in points {
            lines.append(
                ([p.threshold, p.accuracy, p.macroF1, p.relativeCost].map { String($0) } + [p.paretoOptimal ? "1" : "0"]
                    + p.exitFractions.map { String($0) }).joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// For each (accuracy, cost) point, whether it is Pareto-optimal: no other point is at least as
/// accurate and at most as costly, and strictly better in one of the two.
package func paretoOptimal(_ points: [(accuracy: Double, cost: Double)]) -> [Bool] {
    points.map { p in
        !points.contains { q in
            q.accuracy >= p.accuracy && q.cost <= p.cost && (q.accuracy > p.accuracy || q.cost < p.cost)
        }
    }
}

/// start, start + step, ... up to stop, which counts as reached within rounding (0.5:0.99:0.01
/// ends at 0.99, not 0.98).
package func steps(from start: Double, through stop: Double, by step: Double) -> [Double] {
    let n = Int(((stop - start) / step + 1e-9).rounded(.down))
    return (0...n).map { start + Double($0) * step }
}
