import CGTModel

/// How far each exit's confidence can be trusted (see `../shared/papers/early-exit-training-and-calibration-abstracts.txt`):
/// calibration (does confidence match accuracy?) and failure prediction (does confidence rank
/// right answers above wrong ones?).
public struct ConfidenceQuality: Codable, Equatable, Sendable {
    /// One bin of a reliability diagram: samples whose confidence lies in [lower, upper).
    public struct Bin: Codable, Equatable, Sendable {
        public var lower: Double
        public var upper: Double
        public var count: Int
        public var meanConfidence: Double
        public var accuracy: Double

        enum CodingKeys: String, CodingKey {
            case lower, upper, count
            case meanConfidence = "mean_confidence"
            case accuracy
        }
    }

    /// Expected calibration error: sum_b (n_b / N) |accuracy_b - confidence_b| over equal-width bins.
    public var ece: Double
    /// Area under the ROC curve of the score separating correct from wrong predictions
    /// (nil when the exit is always right or always wrong).
    public var auroc: Double?
    public var bins: [Bin]

    /// Calibration of `confidence` (in [0, 1]) against `correct`, in `binCount` equal-width bins
    /// (the last one closed), and the AUROC of `score` for correctness.
    public init(confidence: [Float], correct: [Bool], score: [Float]? = nil, binCount: Int = 15) {
        precondition(confidence.count == correct.count, "one correctness flag per confidence")
        var counts = [Int](repeating: 0, count: binCount)
        var confidenceSums = [Double](repeating: 0, count: binCount)
        var correctSums = confidenceSums
        for (c, right) in zip(confidence, correct) {
            let b = min(binCount - 1, max(0, Int(Double(c) * Double(binCount))))
            counts[b] += 1
            confidenceSums[b] += Double(c)
            correctSums[b] += right ? 1 : 0
        }
        let n = Double(max(1, confidence.count))
        var ece = 0.0
        bins = (0..<binCount).map { b in
            let count = counts[b]
            let meanConfidence = count > 0 ? confidenceSums[b] / Double(count) : 0
            let accuracy = count > 0 ? correctSums[b] / Double(count) : 0
            ece += Double(count) / n * abs(accuracy - meanConfidence)
            return Bin(
                lower: Double(b) / Double(binCount), upper: Double(b + 1) / Double(binCount), count: count,
                meanConfidence: meanConfidence, accuracy: accuracy)
        }
        self.ece = ece
        auroc = Self.auroc(score: score ?? confidence, positive: correct)
    }

    /// The probability that a random positive scores above a random negative, ties counting
    /// one half (the Mann-Whitney statistic, from average ranks).
    public static func auroc(score: [Float], positive: [Bool]) -> Double? {
        let positives = positive.filter { $0 }.count
        let negatives = positive.count - positives
        guard positives > 0 && negatives > 0 else { return nil }
        let order = score.indices.sorted { score[$0] < score[$1] }
        var rankSum = 0.0
        var start = 0
        while start < order.count {
            var end = start
            while end + 1 < order.count && score[order[end + 1]] == score[order[start]] { end += 1 }
            let averageRank = Double(start + end) / 2 + 1
            for k in start...end where positive[order[k]] { rankSum += averageRank }
            start = end + 1
        }
        let p = Double(positives)
        let q = Double(negatives)
        return (rankSum - p * (p + 1) / 2) / (p * q)
    }
}

extension ExitRecords {
    /// Confidence quality of every exit on all samples: calibration of its maximum probability,
    /// failure prediction by the policy's criterion. A declining exit counts as wrong with confidence 0.
    public func confidenceQuality(criterion: ExitCriterion, binCount: Int = 15) -> [ConfidenceQuality] {
        let scores = self.scores(criterion)
        return (0..<exits).map { e in
            let rows = stride(from: e, to: count * exits, by: exits)
            let correct = rows.enumerated().map { i, k in predictions[k] == labels[i] }
            return ConfidenceQuality(
                confidence: rows.map { maxProbability[$0] }, correct: correct,
                score: rows.map { scores[$0] }, binCount: binCount)
        }
    }

    /// For each class, the fraction of its samples each exit answers under `policy` (`[class][exit]`;
    /// zeros for a class absent from the records).
    public func perClassExitFractions(_ policy: ExitPolicy) -> [[Double]] {
        var counts = [[Int]](repeating: [Int](repeating: 0, count: exits), count: classes)
        forEachRoute(policy) { i, exit in counts[Int(labels[i])][exit] += 1 }
        return counts.map { row in
            let total = row.reduce(0, +)
            return row.map { total > 0 ? Double($0) / Double(total) : 0 }
        }
    }
}
