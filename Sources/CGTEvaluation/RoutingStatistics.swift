import CGTJob
import CGTModel

/// What early-exit inference at a threshold did on a set of samples: where they left, how
/// accurate each exit was, and what it cost.
///
/// Costs are inference FLOPs per sample (see `hdf5_data/README.md`, "FLOP counts"); a sample
/// that leaves at exit e paid for every block up to it and every head on the way.
public struct RoutingStatistics: Codable, Equatable, Sendable {
    public var tau: Double
    public var samples: Int
    /// Accuracy of the early-exit predictions.
    public var accuracy: Double
    /// Unweighted means over the classes present in the labels or the predictions.
    public var macroPrecision: Double
    public var macroRecall: Double
    public var macroF1: Double
    /// Means over the classes weighted by their number of samples (nil in files of older versions).
    public var weightedPrecision: Double?
    public var weightedRecall: Double?
    public var weightedF1: Double?
    /// Fraction of samples answered by each exit (sums to 1).
    public var exitFractions: [Double]
    /// Accuracy of each exit on all samples, as if it were the only exit.
    public var perExitAccuracy: [Double]
    /// Accuracy of each exit on the samples it answered (nil where it answered none).
    public var answeredAccuracy: [Double?]
    /// Expected FLOPs per sample over the full network's (every block and the last head).
    public var relativeCost: Double
    public var expectedFLOPs: Double
    public var exitFLOPs: [Int]
    public var fullNetworkFLOPs: Int
    /// Mean 1-based index of the answering exit.
    public var averageExitDepth: Double
    /// confusion[true][predicted] of the early-exit predictions.
    public var confusion: [[Int]]

    enum CodingKeys: String, CodingKey {
        case tau, samples, accuracy
        case macroPrecision = "macro_precision"
        case macroRecall = "macro_recall"
        case macroF1 = "macro_f1"
        case weightedPrecision = "weighted_precision"
        case weightedRecall = "weighted_recall"
        case weightedF1 = "weighted_f1"
        case exitFractions = "exit_fractions"
        case perExitAccuracy = "per_exit_accuracy"
        case answeredAccuracy = "answered_accuracy"
        case relativeCost = "relative_cost"
        case expectedFLOPs = "expected_flops"
        case exitFLOPs = "exit_flops"
        case fullNetworkFLOPs = "full_network_flops"
        case averageExitDepth = "average_exit_depth"
        case confusion
    }
}

/// Counts gathered sample by sample, then turned into `RoutingStatistics`.
///
/// The counts are plain sums, so tallies of several ranks add up to the tally of all samples.
public struct RoutingTally: Equatable, Sendable {
    public let exits: Int
    public let classes: Int
    /// Samples answered by each exit, and how many of them correctly.
    public var answered: [Int]
    public var answeredCorrect: [Int]
    /// Samples each exit classifies correctly (all samples, every exit).
    public var exitCorrect: [Int]
    public var confusion: [[Int]]

    public init(exits: Int, classes: Int) {
        self.exits = exits
        self.classes = classes
        answered = Array(repeating: 0, count: exits)
        answeredCorrect = answered
        exitCorrect = answered
        confusion = Array(repeating: Array(repeating: 0, count: classes), count: classes)
    }

    public var samples: Int { answered.reduce(0, +) }

    /// Routes one sample: the first exit with confidence >= tau answers; if none does, the last
    /// exit. An exit that declines (prediction -1, ClassyNet's "other") never answers early.
    public mutating func add(label: Int, predictions: [Int], confidence: [Float], tau: Float) {
        let answers = predictions.map { Int32($0) }[...]
        add(
            label: label, predictions: answers,
            answeredBy: ExitPolicy.uniform(tau, exits: exits).route(scores: confidence[...], predictions: answers))
    }

    /// Counts one sample that `exit` answered; `predictions` holds every exit's answer.
    public mutating func add(label: Int, predictions: ArraySlice<Int32>, answeredBy exit: Int) {
        let p = predictions.startIndex
        for e in 0..<exits where predictions[p + e] == Int32(label) { exitCorrect[e] += 1 }
        answered[exit] += 1
        let answer = Int(predictions[p + exit])
        if answer == label { answeredCorrect[exit] += 1 }
        if answer >= 0 { confusion[label][answer] += 1 }
    }

    /// All counts in one array (for an all-reduce) and back.
    public var flattened: [Int64] {
        (answered + answeredCorrect + exitCorrect + confusion.flatMap { $0 }).map(Int64.init)
    }

    public init(exits: Int, classes: Int, flattened values: [Int64]) {
        self.init(exits: exits, classes: classes)
        let v = values.map(Int.init)
        answered = Array(v[0..<exits])
        answeredCorrect = Array(v[exits..<(2 * exits)])
        exitCorrect = Array(v[(2 * exits)..<(3 * exits)])
        for c in 0..<classes { confusion[c] = Array(v[(3 * exits + c * classes)..<(3 * exits + (c + 1) * classes)]) }
    }

    public func statistics(tau: Float, exitFLOPs: [Int], fullNetworkFLOPs: Int) -> RoutingStatistics {
        let n = Double(max(samples, 1))
        let fractions = answered.map { Double($0) / n }
        let expected = zip(fractions, exitFLOPs).reduce(0) { $0 + $1.0 * Double($1.1) }
        var precisions: [Double] = []
        var recalls: [Double] = []
        var f1s: [Double] = []
        var supports: [Double] = []
        for c in 0..<classes {
            let truePositives = Double(confusion[c][c])
            let actual = Double(confusion[c].reduce(0, +))
            let predicted = Double(confusion.reduce(0) { $0 + $1[c] })
            guard actual > 0 || predicted > 0 else { continue }
            let precision = predicted > 0 ? truePositives / predicted : 0
            let recall = actual > 0 ? truePositives / actual : 0
            precisions.append(precision)
            recalls.append(recall)
            f1s.append(precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0)
            supports.append(actual)
        }
        func mean(_ values: [Double]) -> Double { values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count) }
        let support = supports.reduce(0, +)
        func weighted(_ values: [Double]) -> Double {
            support > 0 ? zip(values, supports).reduce(0) { $0 + $1.0 * $1.1 } / support : 0
        }
        return RoutingStatistics(
            tau: Double(tau), samples: samples,
            accuracy: Double(answeredCorrect.reduce(0, +)) / n,
            macroPrecision: mean(precisions), macroRecall: mean(recalls), macroF1: mean(f1s),
            weightedPrecision: weighted(precisions), weightedRecall: weighted(recalls), weightedF1: weighted(f1s),
            exitFractions: fractions,
            perExitAccuracy: exitCorrect.map { Double($0) / n },
            answeredAccuracy: zip(answeredCorrect, answered).map { $1 > 0 ? Double($0) / Double($1) : nil },
            relativeCost: expected / Double(fullNetworkFLOPs),
            expectedFLOPs: expected, exitFLOPs: exitFLOPs, fullNetworkFLOPs: fullNetworkFLOPs,
            averageExitDepth: fractions.enumerated().reduce(0) { $0 + Double($1.offset + 1) * $1.element },
            confusion: confusion)
    }
}

extension RoutingStatistics {
    /// The headline numbers a `SelectionMetric` chooses by.
    public var scores: SelectionScores {
        SelectionScores(
            accuracy: accuracy, macroF1: macroF1, macroPrecision: macroPrecision, macroRecall: macroRecall,
            relativeCost: relativeCost)
    }
}
