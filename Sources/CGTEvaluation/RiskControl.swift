import CGTModel
import CGTRandom
import Foundation

/// An exit threshold with a guarantee: the accuracy the early exits lose against the full
/// network stays within `epsilon` with probability at least 1 - `delta`, over the draw of the
/// calibration samples it was chosen on.
///
/// Learn then Test (Angelopoulos, Bates, Candès, Jordan and Lei, 2021), as Jazbec et al.
/// (arXiv 2405.20915) apply it to early-exit networks. A sample's loss under a threshold is 1
/// when the full network (the last exit) answers it correctly and the early-exit policy does
/// not, else 0; its mean over the calibration samples estimates the risk R(tau). For each
/// threshold the null hypothesis R(tau) > epsilon gets Hoeffding's p-value
/// exp(-2 n (epsilon - R)^2) (1 when R >= epsilon). Thresholds are tested in a fixed sequence
/// from the most cautious (highest) down, each at level delta, stopping at the first that is
/// not rejected: the family-wise error stays within delta without a correction, and the last
/// rejected threshold, the cheapest of those, is chosen. The calibration samples must be
/// exchangeable with those the policy will meet and unseen in training: the validation split.
public struct RiskControl: Codable, Equatable, Sendable {
    /// The largest accuracy loss against the full network allowed (a fraction of samples).
    public var epsilon: Double
    /// The probability with which the guarantee may fail.
    public var delta: Double

    public init(epsilon: Double, delta: Double) {
        self.epsilon = epsilon
        self.delta = delta
    }

    /// One threshold of the sequence: its calibration risk and p-value.
    public struct Test: Codable, Equatable, Sendable {
        public var threshold: Double
        public var risk: Double
        public var pValue: Double

        enum CodingKeys: String, CodingKey {
            case threshold, risk
            case pValue = "p_value"
        }
    }

    /// The outcome on calibration records: the thresholds tested, in order, and the one chosen
    /// (nil when even the most cautious cannot be certified).
    public struct Choice: Codable, Equatable, Sendable {
        public var threshold: Double?
        public var tests: [Test]
    }

    /// The gap risk of `policy` on `records`: the fraction of samples the last exit answers
    /// correctly and the policy's exit does not.
    public static func risk(of policy: ExitPolicy, on records: ExitRecords) -> Double {
        let exits = records.exits
        var lost = 0
        records.forEachRoute(policy) { i, exit in
            let label = records.labels[i]
            if records.predictions[i * exits + exits - 1] == label && records.predictions[i * exits + exit] != label {
                lost += 1
            }
        }
        return Double(lost) / Double(max(records.count, 1))
    }

    /// Hoeffding's p-value for "the risk exceeds epsilon" given a mean of `risk` over `n` samples.
    public func pValue(risk: Double, samples n: Int) -> Double {
        guard risk < epsilon, n > 0 else { return 1 }
        return exp(-2 * Double(n) * (epsilon - risk) * (epsilon - risk))
    }

    /// Tests `thresholds` (one value at every exit) on `records` from the highest down, as above.
    public func choose(
        on records: ExitRecords, thresholds: [Float], criterion: ExitCriterion, fallback: ExitFallback
    ) -> Choice {
        var choice = Choice(threshold: nil, tests: [])
        for tau in thresholds.sorted(by: >) {
            let policy = ExitPolicy(
                criterion: criterion, thresholds: Array(repeating: tau, count: records.exits), fallback: fallback)
            let risk = Self.risk(of: policy, on: records)
            let p = pValue(risk: risk, samples: records.count)
            choice.tests.append(Test(threshold: Double(tau), risk: risk, pValue: p))
            guard p <= delta else { break }
            choice.threshold = Double(tau)
        }
        return choice
    }

    /// How often the guarantee holds: `resplits` seeded random halvings of `records` into
    /// calibration and evaluation samples; on each, a threshold chosen on one half and its risk
    /// measured on the other. Returns the risks of those with a threshold (nil where none was
    /// certified, which breaks no guarantee).
    public func resplitRisks(
        of records: ExitRecords, thresholds: [Float], criterion: ExitCriterion, fallback: ExitFallback,
        resplits: Int, seed: UInt64
    ) -> [Double?] {
        var generator = SeededGenerator(seed: seed, stream: 0x5249_534B)
        return (0..<resplits).map { _ in
            var order = Array(0..<records.count)
            order.shuffle(using: &generator)
            let half = records.count / 2
            let calibration = records.subset(Array(order[..<half]))
            let evaluation = records.subset(Array(order[half...]))
            guard
                let tau = choose(on: calibration, thresholds: thresholds, criterion: criterion, fallback: fallback)
                    .threshold
            else { return nil }
            let policy = ExitPolicy(
                criterion: criterion, thresholds: Array(repeating: Float(tau), count: records.exits),
                fallback: fallback)
            return Self.risk(of: policy, on: evaluation)
        }
    }
}

extension ExitRecords {
    /// The records of the samples at `indices`, in that order.
    public func subset(_ indices: [Int]) -> ExitRecords {
        func rows<T>(_ values: [T]) -> [T] { indices.flatMap { values[($0 * exits)..<(($0 + 1) * exits)] } }
        return ExitRecords(
            exits: exits, classes: classes, labels: indices.map { labels[$0] }, predictions: rows(predictions),
            maxProbability: rows(maxProbability), entropyScore: rows(entropyScore), margin: rows(margin))
    }
}
