import CGTEvaluation
import CGTJob
import CGTTraining
import Foundation

/// Finished runs summarised in the format of the paper's Table 1: one row per job name,
/// mean and standard deviation over the runs (seeds) that share it.
public struct ResultsTable: Equatable {
    /// One job's runs.
    public struct Row: Equatable {
        public var name: String
        public var method: String
        public var seeds: [UInt64]
        /// Per run: macro F1, precision, recall, accuracy, relative cost, exit fractions, training seconds.
        public var runs: [RoutingStatistics]
        public var trainingSeconds: [Double]
    }

    public var rows: [Row]

    /// Reads `<run>/job.yaml`, `<run>/eval.json` and `<run>/metrics.jsonl` of every run folder;
    /// rows keep the order in which their first run is given.
    public static func load(runs: [String]) throws -> ResultsTable {
        var rows: [Row] = []
        for path in runs {
            let run = RunDirectory(path: path)
            guard let evaluation = FileManager.default.contents(atPath: run.evaluationFile) else {
                throw TrainingError("\(run.evaluationFile): no such file (has the run finished?)")
            }
            let statistics: RoutingStatistics
            do {
                statistics = try JSONDecoder().decode(RoutingStatistics.self, from: evaluation)
            } catch {
                throw TrainingError("\(run.evaluationFile): not an evaluation cgt wrote (\(error))")
            }
            let job = try JobLoader.load(path: run.jobFile)
            let seconds = try MetricsLog.read(run.metricsFile).reduce(0) { $0 + $1.seconds }
            if let index = rows.firstIndex(where: { $0.name == job.name }) {
                rows[index].seeds.append(job.training.seed)
                rows[index].runs.append(statistics)
                rows[index].trainingSeconds.append(seconds)
            } else {
                rows.append(
                    Row(
                        name: job.name, method: job.method.name.rawValue, seeds: [job.training.seed],
                        runs: [statistics], trainingSeconds: [seconds]))
            }
        }
        return ResultsTable(rows: rows)
    }

    /// Mean and sample standard deviation (0 for one value).
    static func meanAndDeviation(_ values: [Double]) -> (mean: Double, deviation: Double) {
        let mean = values.reduce(0, +) / Double(max(1, values.count))
        guard values.count > 1 else { return (mean, 0) }
        let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count - 1)
        return (mean, variance.squareRoot())
    }

    /// "95.1 ± 0.4" in percent (or "95.1" for a single run).
    static func percent(_ values: [Double]) -> String {
        let (mean, deviation) = meanAndDeviation(values.map { $0 * 100 })
        return values.count > 1 ? String(format: "%.1f ± %.1f", mean, deviation) : String(format: "%.1f", mean)
    }

    static func plain(_ values: [Double], format: String) -> String {
        let (mean, deviation) = meanAndDeviation(values)
        return values.count > 1
            ? String(format: "\(format) ± \(format)", mean, deviation) : String(format: format, mean)
    }

    /// The Markdown table: the paper's columns (F1, precision, recall, % of test samples at each
    /// exit), then accuracy, relative cost, training time and the seeds.
    public func markdown() -> String {
        let exits = rows.flatMap { $0.runs.map(\.exitFractions.count) }.max() ?? 0
        var header = ["Model", "F1 %", "Precision %", "Recall %"] + (0..<exits).map { "#Exit\($0 + 1) %" }
        header += ["Accuracy %", "Relative cost", "Train time (s)", "Seeds"]
        var lines = [
            "| " + header.joined(separator: " | ") + " |", "|" + header.map { _ in "---" }.joined(separator: "|") + "|",
        ]
        let methods = rows.map(\.method)
        for row in rows {
            // The method names a row unless several rows share it (a grid's trials).
            let label = methods.filter { $0 == row.method }.count > 1 ? row.name : row.method
            var cells = [
                label, Self.percent(row.runs.map(\.macroF1)), Self.percent(row.runs.map(\.macroPrecision)),
                Self.percent(row.runs.map(\.macroRecall)),
            ]
            cells += (0..<exits).map { e in
                Self.percent(row.runs.map { e < $0.exitFractions.count ? $0.exitFractions[e] : 0 })
            }
            cells += [
                Self.percent(row.runs.map(\.accuracy)), Self.plain(row.runs.map(\.relativeCost), format: "%.3f"),
                Self.plain(row.trainingSeconds, format: "%.0f"), row.seeds.map(String.init).joined(separator: ", "),
            ]
            lines.append("| " + cells.joined(separator: " | ") + " |")
        }
        return lines.joined(separator: "\n")
    }
}
