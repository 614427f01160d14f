/// What "best" means when runs or epochs are compared: the metric a grid sorts its trials by
/// (`metric:`) and `training.keep_best` keeps the checkpoint for.
public enum SelectionMetric: String, CaseIterable, Sendable {
    case macroF1 = "macro_f1"
    case accuracy
    case relativeCost = "relative_cost"
    case macroPrecision = "macro_precision"
    case macroRecall = "macro_recall"

    /// Cost is the one metric where less is better.
    public var lowerIsBetter: Bool { self == .relativeCost }

    /// Whether `value` beats `other` by this metric (a tie does not).
    public func isBetter(_ value: Double, than other: Double) -> Bool {
        lowerIsBetter ? value < other : value > other
    }

    /// This metric of `scores`.
    public func value(of scores: SelectionScores) -> Double {
        switch self {
        case .macroF1: return scores.macroF1
        case .accuracy: return scores.accuracy
        case .relativeCost: return scores.relativeCost
        case .macroPrecision: return scores.macroPrecision
        case .macroRecall: return scores.macroRecall
        }
    }
}

/// One split's headline numbers of a run: what a `SelectionMetric` picks from.
public struct SelectionScores: Codable, Equatable, Sendable {
    public var accuracy: Double
    public var macroF1: Double
    public var macroPrecision: Double
    public var macroRecall: Double
    public var relativeCost: Double

    enum CodingKeys: String, CodingKey {
        case accuracy
        case macroF1 = "macro_f1"
        case macroPrecision = "macro_precision"
        case macroRecall = "macro_recall"
        case relativeCost = "relative_cost"
    }

    public init(accuracy: Double, macroF1: Double, macroPrecision: Double, macroRecall: Double, relativeCost: Double) {
        self.accuracy = accuracy
        self.macroF1 = macroF1
        self.macroPrecision = macroPrecision
        self.macroRecall = macroRecall
        self.relativeCost = relativeCost
    }
}
