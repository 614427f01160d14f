import CGTEvaluation
import CGTExperiments
import CGTJob
import CGTTraining
import Foundation

/// The routing statistics as a table for the terminal.
enum RoutingTable {
    static func render(_ s: RoutingStatistics) -> String {
        var lines = [
            "early-exit evaluation at tau \(String(format: "%.3f", s.tau)) on \(s.samples) samples:",
            "  exit  answers  answered acc  exit acc  MFLOPs/sample",
        ]
        for e in s.exitFractions.indices {
            let answered = s.answeredAccuracy[e].map { String(format: "%.4f", $0) } ?? "-"
            lines.append(
                String(
                    format: "  %4d  %7.3f  %12@  %8.4f  %13.4f",
                    e + 1, s.exitFractions[e], answered.padding(toLength: 12, withPad: " ", startingAt: 0),
                    s.perExitAccuracy[e], Double(s.exitFLOPs[e]) / 1e6))
        }
        lines.append(
            String(
                format: "  accuracy %.4f  macro P/R/F1 %.4f/%.4f/%.4f  relative cost %.3f  mean exit %.2f",
                s.accuracy, s.macroPrecision, s.macroRecall, s.macroF1, s.relativeCost, s.averageExitDepth))
        return lines.joined(separator: "\n")
    }
}
