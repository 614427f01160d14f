import CGTData
import CGTModel
import Foundation

/// Accuracy against expected FLOPs under MSDNet's budgeted batch classification (Huang et al.,
/// ICLR 2018), the one protocol every training method is compared under.
///
/// For each q of a range, a fraction p_k of the samples is meant to leave at exit k, with p_k
/// proportional to q^k (q < 1 favours early exits, q > 1 late ones). Exit k's threshold is fitted
/// on calibration records (the validation split): of the samples still in the network, the
/// p_k N most confident at exit k leave there, and the threshold is the confidence of the last
/// of them; the last exit answers the rest. Those thresholds route the test records, giving one
/// point of accuracy against relative cost per q. The curve's area over a stated budget range,
/// divided by the range's width, is its mean accuracy there: one number per run (`area`).
public struct BudgetedCurve: Codable, Equatable, Sendable {
    public struct Point: Codable, Equatable, Sendable {
        public var q: Double
        /// Exit thresholds fitted on the calibration records.
        public var thresholds: [Float]
        public var accuracy: Double
        public var relativeCost: Double
        /// Expected FLOPs per test sample.
        public var expectedFLOPs: Double
        public var exitFractions: [Double]

        enum CodingKeys: String, CodingKey {
            case q, thresholds, accuracy
            case relativeCost = "relative_cost"
            case expectedFLOPs = "expected_flops"
            case exitFractions = "exit_fractions"
        }
    }

    public var criterion: ExitCriterion
    public var points: [Point]
    /// The budget range (relative cost) the area is taken over, and the mean accuracy there.
    public var range: ClosedRange<Double>
    public var area: Double
    /// The split the thresholds were fitted on.
    public var fittedOn: DatasetSplitName

    enum CodingKeys: String, CodingKey {
        case criterion, points, range, area
        case fittedOn = "fitted_on"
    }

    /// The q values of MSDNet's evaluation: 0.05, 0.10, ..., 2.00.
    public static let defaultQs = (1...40).map { Double($0) * 0.05 }

    /// Fits thresholds on `calibration` for every q and evaluates them on `test`.
    public init(
        calibration: ExitRecords, fittedOn: DatasetSplitName, test: ExitRecords, criterion: ExitCriterion,
        exitFLOPs: [Int],
        fullNetworkFLOPs: Int, range: ClosedRange<Double>, qs: [Double] = BudgetedCurve.defaultQs
    ) {
        self.criterion = criterion
        self.fittedOn = fittedOn
        self.range = range
        points = qs.map { q in
            let thresholds = Self.thresholds(
                on: calibration, proportions: Self.proportions(q: q, exits: calibration.exits), criterion: criterion)
            let policy = ExitPolicy(criterion: criterion, thresholds: thresholds, fallback: .last)
            let s = test.tally(policy).statistics(
                tau: thresholds.first ?? 0, exitFLOPs: exitFLOPs, fullNetworkFLOPs: fullNetworkFLOPs)
            return Point(
                q: q, thresholds: thresholds, accuracy: s.accuracy, relativeCost: s.relativeCost,
                expectedFLOPs: s.expectedFLOPs, exitFractions: s.exitFractions)
        }
        area = Self.meanAccuracy(of: points.map { ($0.relativeCost, $0.accuracy) }, over: range)
    }

    /// p_k proportional to q^k, k = 1...exits, summing to 1.
    public static func proportions(q: Double, exits: Int) -> [Double] {
        let raw = (1...exits).map { pow(q, Double($0)) }
        let total = raw.reduce(0, +)
        return raw.map { $0 / total }
    }

    /// Exit thresholds that let `proportions[k]` of `records` leave at exit k, in order; the
    /// last exit's threshold is 0 (it answers everything left). An exit that declines a sample
    /// (ClassyNet's "other") never takes it.
    public static func thresholds(on records: ExitRecords, proportions: [Double], criterion: ExitCriterion) -> [Float] {
        let exits = records.exits
        let scores = records.scores(criterion)
        var remaining = Array(0..<records.count)
        var thresholds = [Float](repeating: 0, count: exits)
        for k in 0..<(exits - 1) {
            let quota = Int((proportions[k] * Double(records.count)).rounded())
            let candidates = remaining.filter { records.predictions[$0 * exits + k] >= 0 }
                .sorted { scores[$0 * exits + k] > scores[$1 * exits + k] }
            guard quota > 0, !candidates.isEmpty else {
                thresholds[k] = .infinity
                continue
            }
            let taken = candidates.prefix(quota)
            let threshold = scores[taken.last! * exits + k]
            thresholds[k] = threshold
            // Ties at the threshold leave too, as the policy will route them.
            remaining = remaining.filter {
                !(records.predictions[$0 * exits + k] >= 0 && scores[$0 * exits + k] >= threshold)
            }
        }
        return thresholds
    }

    /// The mean over `range` of the accuracy of the curve's upper envelope, drawn through its
    /// Pareto points in order of cost and held flat beyond its cheapest and dearest point.
    public static func meanAccuracy(of points: [(cost: Double, accuracy: Double)], over range: ClosedRange<Double>)
        -> Double
    {
        let front = zip(points, paretoOptimal(points.map { ($0.accuracy, $0.cost) })).filter(\.1).map(\.0)
            .sorted { $0.cost < $1.cost }
        guard !front.isEmpty else { return .nan }
        guard range.upperBound > range.lowerBound else { return accuracy(at: range.lowerBound, on: front) }
        // The envelope is piecewise linear: integrate exactly between its corners.
        let corners = ([range.lowerBound, range.upperBound] + front.map(\.cost).filter { range.contains($0) }).sorted()
        var area = 0.0
        for (a, b) in zip(corners, corners.dropFirst()) {
            area += (accuracy(at: a, on: front) + accuracy(at: b, on: front)) / 2 * (b - a)
        }
        return area / (range.upperBound - range.lowerBound)
    }

    /// The accuracy of the curve's upper envelope at `flops` expected FLOPs per sample, drawn
    /// as for `area` but against FLOPs, so that curves of different networks share an axis.
    public func accuracy(atExpectedFLOPs flops: Double) -> Double {
        let pairs = points.map { (cost: $0.expectedFLOPs, accuracy: $0.accuracy) }
        let front = zip(pairs, paretoOptimal(pairs.map { ($0.accuracy, $0.cost) })).filter(\.1).map(\.0)
            .sorted { $0.cost < $1.cost }
        return front.isEmpty ? .nan : Self.accuracy(at: flops, on: front)
    }

    private static func accuracy(at cost: Double, on front: [(cost: Double, accuracy: Double)]) -> Double {
        if cost <= front[0].cost { return front[0].accuracy }
        if cost >= front[front.count - 1].cost { return front[front.count - 1].accuracy }
        let upper = front.firstIndex { $0.cost >= cost }!
        let (a, b) = (front[upper - 1], front[upper])
        return a.accuracy + (b.accuracy - a.accuracy) * (cost - a.cost) / max(b.cost - a.cost, 1e-300)
    }
}

extension BudgetedCurve {
    /// budgeted.csv: one row per q.
    public var csv: String {
        let exits = points.first?.exitFractions.count ?? 0
        var lines = [
            (["q", "accuracy", "relative_cost", "expected_flops"] + (1...max(exits, 1)).map { "threshold\($0)" }
                + (1...max(exits, 1)).map { "exit\($0)_fraction" }).joined(separator: ",")
        ]
        for p in points {
            lines.append(
                ([String(p.q), String(p.accuracy), String(p.relativeCost), String(p.expectedFLOPs)]
                    + p.thresholds.map { $0.isFinite ? String($0) : "inf" } + p.exitFractions.map { String($0) })
                    .joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    var summary: String {
        String(
            format:
                "budgeted (MSDNet, q 0.05-2.00, thresholds fitted on %@): mean accuracy %.4f over relative cost %.2f-%.2f; curve from %.3f at %.3f to %.3f at %.3f",
            fittedOn.rawValue, area, range.lowerBound, range.upperBound, points.map(\.accuracy).first ?? .nan,
            points.first?.relativeCost ?? .nan, points.last?.accuracy ?? .nan, points.last?.relativeCost ?? .nan)
    }
}
