import CGTEvaluation
import CGTJob
import Foundation

/// Tells the person watching rank 0 where training is: epoch, step, loss and gate per exit,
/// throughput and time left. Other ranks stay silent.
public struct ProgressReporter {
    public let enabled: Bool
    public let write: (String) -> Void
    private var lastLine = Date()

    public init(
        enabled: Bool,
        write: @escaping (String) -> Void = {
            print($0)
            fflush(stdout)
        }
    ) {
        self.enabled = enabled
        self.write = write
    }

    public func say(_ text: String) { if enabled { write(text) } }

    /// A line inside a long epoch, at most every ten seconds.
    public mutating func step(
        epoch: Int, epochs: Int, step: Int, steps: Int, loss: [Double], samplesPerSecond: Double, secondsLeft: Double
    ) {
        guard enabled, Date().timeIntervalSince(lastLine) >= 10 else { return }
        lastLine = Date()
        write(
            "  epoch \(epoch)/\(epochs) step \(step)/\(steps)  loss \(Self.list(loss))  \(Self.rate(samplesPerSecond))  ETA \(Self.duration(secondsLeft))"
        )
    }

    public mutating func epoch(_ m: EpochMetrics, epochs: Int, secondsLeft: Double) {
        guard enabled else { return }
        lastLine = Date()
        var line =
            "epoch \(m.epoch)/\(epochs)  step \(m.globalStep)  loss \(Self.list(m.loss))  gate \(Self.list(m.gateMean, digits: 2))"
        line += "  acc \(Self.list(m.trainAccuracy, digits: 3))  lr \(String(format: "%.2e", m.learningRate))"
        line += "  \(Self.rate(m.samplesPerSecond))"
        if let stall = m.dataStallSeconds, stall > Self.stallWorthSaying * m.seconds {
            line += String(format: "  data stall %.2fs (%.0f%%)", stall, 100 * stall / max(m.seconds, 1e-9))
        }
        line += "  ETA \(Self.duration(secondsLeft))"
        for (split, e) in [("test", m.evaluation), ("validation", m.validation)] {
            guard let e else { continue }
            line +=
                "  | \(split) acc \(String(format: "%.4f", e.accuracy)) exits \(Self.list(e.exitFractions, digits: 3)) cost \(String(format: "%.3f", e.relativeCost))"
        }
        write(line)
    }

    /// The share of an epoch spent waiting for data above which the epoch's line says so.
    static let stallWorthSaying = 0.02

    static func list(_ values: [Double], digits: Int = 4) -> String {
        values.map { String(format: "%.\(digits)f", $0) }.joined(separator: " ")
    }

    static func rate(_ samplesPerSecond: Double) -> String {
        samplesPerSecond >= 1000
            ? String(format: "%.1fk samples/s", samplesPerSecond / 1000)
            : String(format: "%.0f samples/s", samplesPerSecond)
    }

    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        let s = Int(seconds.rounded())
        if s >= 3600 { return "\(s / 3600)h\(String(format: "%02d", (s % 3600) / 60))m" }
        if s >= 60 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
        return "\(s)s"
    }
}
