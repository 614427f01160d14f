import CGTCheckpoint
import CGTEvaluation
import CGTJob
import CGTTraining
import Foundation

/// The data a run was evaluated on, as its `eval.json` records it.
public struct DataIdentity: Hashable, Sendable {
    /// SHA-256 of the data file; nil for runs that do not record one (trained before cgt
    /// wrote `data_sha256`).
    public var sha256: String?
    /// The data file's name (without its folder).
    public var file: String?

    public init(sha256: String?, file: String?) {
        self.sha256 = sha256.flatMap { $0.isEmpty ? nil : $0 }
        self.file = file.flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0).lastPathComponent }
    }

    /// What rows are grouped by: the hash, or "unknown".
    public var key: String { sha256 ?? "unknown" }

    /// "tiny.h5 (1a2b3c4d)", or "tiny.h5 (data unknown)" without a hash.
    public var description: String {
        let hash = sha256.map { String($0.prefix(8)) } ?? "data unknown"
        return file.map { "\($0) (\(hash))" } ?? hash
    }

    /// Reads `data` and `data_sha256` of an eval.json (absent in older ones).
    static func read(evaluation: Data) -> DataIdentity {
        struct Keys: Decodable {
            var data: String?
            var dataSHA256: String?
            enum CodingKeys: String, CodingKey {
                case data
                case dataSHA256 = "data_sha256"
            }
        }
        let keys = try? JSONDecoder().decode(Keys.self, from: evaluation)
        return DataIdentity(sha256: keys?.dataSHA256, file: keys?.data)
    }
}

extension ResultsTable.Row {
    /// The budgeted area in percent, mean ± std over the runs that have one, and how many of
    /// the row's runs that is when not all.
    var budgetedAreaCell: String {
        let areas = budgeted.compactMap { $0?.area }
        guard !areas.isEmpty else { return "" }
        let cell = ResultsTable.plain(areas.map { $0 * 100 }, format: "%.2f")
        return areas.count == budgeted.count ? cell : "\(cell) (\(areas.count) of \(budgeted.count) runs)"
    }
}

/// Finished runs summarised in the format of the paper's Table 1: one row per job name and
/// data (by its SHA-256), mean and standard deviation over the runs (seeds) that share them.
/// Runs of one name on different data are different rows; two runs of one row with the same
/// seed are refused, since a row's spread is over seeds.
public struct ResultsTable: Equatable {
    /// One job's runs on one data file.
    public struct Row: Equatable {
        public var name: String
        public var method: String
        public var data: DataIdentity
        public var seeds: [UInt64]
        /// The run folders, in the order of `seeds`.
        public var folders: [String]
        /// Per run: macro F1, precision, recall, accuracy, relative cost, exit fractions, training seconds.
        public var runs: [RoutingStatistics]
        public var trainingSeconds: [Double]
        /// Per run: its budgeted curve (`cgt eval --budgeted`), if its eval.json has one.
        public var budgeted: [BudgetedCurve?]
    }

    public var rows: [Row]
    /// What the reader left out, in words (a last line of a metrics.jsonl cut short by a kill).
    public var warnings: [String] = []

    /// Reads `<run>/job.yaml`, `<run>/eval.json` and `<run>/metrics.jsonl` of every run folder;
    /// rows keep the order in which their first run is given.
    public static func load(runs: [String]) throws -> ResultsTable {
        var rows: [Row] = []
        var warnings: [String] = []
        var given: [String: String] = [:]
        for path in runs {
            let resolved = URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
            if let first = given[resolved] {
                let also = first == path ? "" : " (also as \(first))"
                throw TrainingError("\(path): given twice\(also); give each run folder once")
            }
            given[resolved] = path
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
            // eval.json records its data since format 1; the checkpoint did before it.
            var data = DataIdentity.read(evaluation: evaluation)
            if data.sha256 == nil || data.file == nil {
                data = DataIdentity(
                    sha256: data.sha256 ?? Checkpoint.recordedDataSHA256(at: run.lastCheckpoint),
                    file: data.file ?? job.data.path)
            }
            let seconds = try MetricsLog.read(run.metricsFile) { warnings.append($0) }.reduce(0) { $0 + $1.seconds }
            struct Budgeted: Decodable { var budgeted: BudgetedCurve? }
            let budgeted = (try? JSONDecoder().decode(Budgeted.self, from: evaluation))?.budgeted
            let seed = job.training.seed
            if let index = rows.firstIndex(where: { $0.name == job.name && $0.data.key == data.key }) {
                if let k = rows[index].seeds.firstIndex(of: seed) {
                    throw TrainingError(
                        "\(rows[index].folders[k]) and \(path) are both seed \(seed) of \(job.name) on \(data.description): a row is a mean over seeds, give each seed once"
                    )
                }
                rows[index].seeds.append(seed)
                rows[index].folders.append(path)
                rows[index].runs.append(statistics)
                rows[index].trainingSeconds.append(seconds)
                rows[index].budgeted.append(budgeted)
            } else {
                rows.append(
                    Row(
                        name: job.name, method: job.method.name.rawValue, data: data, seeds: [seed], folders: [path],
                        runs: [statistics], trainingSeconds: [seconds], budgeted: [budgeted]))
            }
        }
        return ResultsTable(rows: rows, warnings: warnings)
    }

    /// What names each row: its method, unless several rows share it (a grid's trials), then
    /// its job name; with the data added where several rows share that name (one job run on
    /// different data).
    public var labels: [String] {
        let bases = rows.map { row in rows.filter { $0.method == row.method }.count > 1 ? row.name : row.method }
        return zip(rows, bases).map { row, base in
            zip(rows, bases).contains { $0.1 == base && $0.0.data != row.data }
                ? "\(base) on \(row.data.description)" : base
        }
    }

    /// The budget range of the runs' budgeted curves, when some have one and all of those share it.
    var budgetRange: ClosedRange<Double>? {
        let ranges = rows.flatMap { $0.budgeted.compactMap { $0?.range } }
        guard let first = ranges.first, ranges.allSatisfy({ $0 == first }) else { return nil }
        return first
    }

    /// True when the rows are on more than one data file (a column then names each row's data).
    var mixesData: Bool { Set(rows.map(\.data.key)).count > 1 }

    /// A sentence about runs that record no data hash, or nil when every run records one.
    public var unknownDataNote: String? {
        let folders = rows.filter { $0.data.sha256 == nil }.flatMap(\.folders)
        guard !folders.isEmpty else { return nil }
        return
            "Data unknown: \(folders.joined(separator: ", ")) record no data_sha256 (in eval.json or checkpoints/last.h5: trained before cgt recorded it), so their rows group them by job name alone, as data \"unknown\"."
    }

    /// Mean and sample standard deviation (0 for one value).
    public static func meanAndDeviation(_ values: [Double]) -> (mean: Double, deviation: Double) {
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
    /// exit), then accuracy, relative cost, training time and the seeds; the data of each row
    /// when the rows are on different data, and a note under the table on runs that do not
    /// record their data.
    public func markdown() -> String {
        let exits = rows.flatMap { $0.runs.map(\.exitFractions.count) }.max() ?? 0
        var header = ["Model", "F1 %", "Precision %", "Recall %"] + (0..<exits).map { "#Exit\($0 + 1) %" }
        header += ["Accuracy %", "Relative cost", "Train time (s)", "Seeds"]
        let budgetRange = self.budgetRange
        if let budgetRange {
            header.append(
                String(format: "Budgeted %% (cost %.2f-%.2f)", budgetRange.lowerBound, budgetRange.upperBound))
        }
        if mixesData { header.append("Data") }
        var lines = [
            "| " + header.joined(separator: " | ") + " |", "|" + header.map { _ in "---" }.joined(separator: "|") + "|",
        ]
        for (row, label) in zip(rows, labels) {
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
            if budgetRange != nil { cells.append(row.budgetedAreaCell) }
            if mixesData { cells.append(row.data.description) }
            lines.append(
                "| " + cells.map { $0.replacingOccurrences(of: "|", with: "/") }.joined(separator: " | ") + " |")
        }
        if let note = unknownDataNote { lines += ["", note] }
        return lines.joined(separator: "\n")
    }
}
