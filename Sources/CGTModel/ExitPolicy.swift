import Foundation

/// How an exit decides that it is confident enough to answer.
///
/// Every criterion is a score in [0, 1] where larger means more confident, so one threshold
/// rule serves all: an exit answers when its score reaches its threshold.
public enum ExitCriterion: String, Codable, Sendable, CaseIterable {
    /// max_c p_c: the paper's confidence.
    case maxProbability = "max_probability"
    /// 1 - H(p) / log C: one minus the normalised entropy of the softmax.
    case entropy
    /// p_(1) - p_(2): the gap between the two largest probabilities.
    case margin
}

/// One softmax row's confidence under every criterion.
package struct ConfidenceScores {
    package var maxProbability: Float
    package var entropy: Float
    package var margin: Float

    /// Scores of the probabilities `row` (summing to 1) of a head over `classes` classes.
    package init<Row: Sequence>(probabilities row: Row, classes: Int) where Row.Element == Float {
        var first: Float = 0
        var second: Float = 0
        var h: Float = 0
        for p in row {
            if p > first {
                second = first
                first = p
            } else if p > second {
                second = p
            }
            if p > 0 { h -= p * Foundation.log(p) }
        }
        maxProbability = first
        entropy = max(0, 1 - h / Foundation.log(Float(classes)))
        margin = first - second
    }

    package subscript(_ criterion: ExitCriterion) -> Float {
        switch criterion {
        case .maxProbability: return maxProbability
        case .entropy: return entropy
        case .margin: return margin
        }
    }
}

/// When no exit fires: the last exit answers (the paper), or the most confident one.
public enum ExitFallback: String, Codable, Sendable, CaseIterable {
    case last
    case mostConfident = "most_confident"
}

/// The rule that routes a sample through the exits: a criterion, a threshold per exit and a fallback.
public struct ExitPolicy: Codable, Equatable, Sendable {
    public var criterion: ExitCriterion
    /// One per exit; the last exit's threshold matters only with the `most_confident` fallback.
    public var thresholds: [Float]
    public var fallback: ExitFallback

    public init(criterion: ExitCriterion = .maxProbability, thresholds: [Float], fallback: ExitFallback = .last) {
        self.criterion = criterion
        self.thresholds = thresholds
        self.fallback = fallback
    }

    /// The paper's policy: maximum probability, one threshold tau at every exit, the last exit as fallback.
    public static func uniform(
        _ tau: Float, exits: Int, criterion: ExitCriterion = .maxProbability, fallback: ExitFallback = .last
    ) -> ExitPolicy {
        ExitPolicy(criterion: criterion, thresholds: Array(repeating: tau, count: exits), fallback: fallback)
    }

    /// Whether exit `e` answers a sample on its own: it names a class (not ClassyNet's "other",
    /// -1) and its score reaches its threshold. The one statement of the rule.
    @inlinable
    public func fires(exit e: Int, score: Float, prediction: Int32) -> Bool {
        prediction >= 0 && score >= thresholds[e]
    }

    /// The exit that answers a sample, given each exit's score and prediction by exit index:
    /// the first that fires, else the fallback.
    @inlinable
    public func route(score: (Int) -> Float, prediction: (Int) -> Int32) -> Int {
        let exits = thresholds.count
        for e in 0..<exits where fires(exit: e, score: score(e), prediction: prediction(e)) { return e }
        guard fallback == .mostConfident else { return exits - 1 }
        // The most confident exit that answers; among equals the earliest, which costs least.
        var best = exits - 1
        for e in stride(from: exits - 2, through: 0, by: -1) where prediction(e) >= 0 && score(e) >= score(best) {
            best = e
        }
        return best
    }

    /// The exit that answers a sample with these scores and predictions (-1: the exit declines).
    @inlinable
    public func route(scores: ArraySlice<Float>, predictions: ArraySlice<Int32>) -> Int {
        let s = scores.startIndex
        let p = predictions.startIndex
        return route(score: { scores[s + $0] }, prediction: { predictions[p + $0] })
    }

    enum CodingKeys: String, CodingKey { case criterion, thresholds, fallback }
}
