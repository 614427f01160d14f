import CGTModel
import Foundation

/// What every exit said about every sample of an evaluation: enough to route the samples under
/// any exit policy, sweep thresholds and measure confidence quality without running the network
/// again. Sample-major: entry `sample * exits + e`.
public struct ExitRecords: Equatable, Sendable {
    public let exits: Int
    public let classes: Int
    public private(set) var labels: [Int32] = []
    /// Exit e's prediction, -1 where it declines (ClassyNet's "other").
    public private(set) var predictions: [Int32] = []
    public private(set) var maxProbability: [Float] = []
    public private(set) var entropyScore: [Float] = []
    public private(set) var margin: [Float] = []

    public init(exits: Int, classes: Int) {
        self.exits = exits
        self.classes = classes
    }

    /// Records given directly (sample-major per-exit arrays).
    public init(
        exits: Int, classes: Int, labels: [Int32], predictions: [Int32], maxProbability: [Float],
        entropyScore: [Float]? = nil, margin: [Float]? = nil
    ) {
        precondition(
            predictions.count == labels.count * exits && maxProbability.count == predictions.count,
            "one entry per sample and exit")
        self.exits = exits
        self.classes = classes
        self.labels = labels
        self.predictions = predictions
        self.maxProbability = maxProbability
        self.entropyScore = entropyScore ?? maxProbability
        self.margin = margin ?? maxProbability
    }

    public var count: Int { labels.count }

    /// Adds the samples of one forward pass from the objective's softmax outputs.
    mutating func append(
        _ outputs: ExitPredictions, objective: ExitObjective, labels batchLabels: UnsafeBufferPointer<Int32>, batch: Int
    ) {
        for i in 0..<batch {
            labels.append(batchLabels[i])
            for e in 0..<exits {
                let prediction = outputs.predictions[e * batch + i]
                predictions.append(prediction)
                guard prediction >= 0 else {
                    maxProbability.append(0)
                    entropyScore.append(0)
                    margin.append(0)
                    continue
                }
                let n = objective.outputs[e]
                let scores = ConfidenceScores(
                    probabilities: objective.probabilities(exit: e, batch: batch)[(i * n)..<(i * n + n)],
                    classes: classes)
                maxProbability.append(scores.maxProbability)
                entropyScore.append(scores.entropy)
                margin.append(scores.margin)
            }
        }
    }

    public func scores(_ criterion: ExitCriterion) -> [Float] {
        switch criterion {
        case .maxProbability: return maxProbability
        case .entropy: return entropyScore
        case .margin: return margin
        }
    }

    /// Calls `body` with every sample's index and the exit `policy` routes it to, in order.
    public func forEachRoute(_ policy: ExitPolicy, _ body: (_ sample: Int, _ exit: Int) -> Void) {
        precondition(policy.thresholds.count == exits, "\(policy.thresholds.count) thresholds for \(exits) exits")
        let scores = self.scores(policy.criterion)
        for i in 0..<count {
            let range = (i * exits)..<((i + 1) * exits)
            body(i, policy.route(scores: scores[range], predictions: predictions[range]))
        }
    }

    /// Routes every sample under `policy` and counts the outcome.
    public func tally(_ policy: ExitPolicy) -> RoutingTally {
        var tally = RoutingTally(exits: exits, classes: classes)
        forEachRoute(policy) { i, exit in
            tally.add(
                label: Int(labels[i]), predictions: predictions[(i * exits)..<((i + 1) * exits)], answeredBy: exit)
        }
        return tally
    }

    /// The records as bytes (for gathering over ranks) and back.
    public var serialized: [UInt8] {
        var bytes: [UInt8] = []
        func put<T>(_ values: [T]) { values.withUnsafeBytes { bytes.append(contentsOf: $0) } }
        put([Int64(count)])
        put(labels)
        put(predictions)
        put(maxProbability)
        put(entropyScore)
        put(margin)
        return bytes
    }

    public mutating func append(serialized bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            func take<T>(_ n: Int, as: T.Type) -> [T] {
                defer { offset += n * MemoryLayout<T>.stride }
                return (0..<n).map {
                    raw.loadUnaligned(fromByteOffset: offset + $0 * MemoryLayout<T>.stride, as: T.self)
                }
            }
            let n = Int(take(1, as: Int64.self)[0])
            labels += take(n, as: Int32.self)
            predictions += take(n * exits, as: Int32.self)
            maxProbability += take(n * exits, as: Float.self)
            entropyScore += take(n * exits, as: Float.self)
            margin += take(n * exits, as: Float.self)
        }
    }
}
