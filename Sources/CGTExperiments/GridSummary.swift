import CGTCheckpoint
import CGTEvaluation
import CGTFiles
import CGTJob
import CGTTraining
import Foundation

/// The results of a grid's trials: a leaderboard sorted by the grid's metric and the Pareto
/// front of accuracy against relative cost, written as CSV, JSON, Markdown, SVG and HTML.
///
/// Trials are ranked on the validation split when every finished trial has one
/// (`validation.json`), so the test numbers beside them stay an unbiased report; on the test
/// split otherwise, and the summary says so.
public struct GridSummary {
    /// One split's headline numbers of a trial.
    public typealias Scores = SelectionScores

    public struct Row: Codable, Equatable {
        public var trial: String
        public var assignments: [[String]]
        public var status: TrialState
        public var message: String?
        public var accuracy: Double?
        public var macroF1: Double?
        public var macroPrecision: Double?
        public var macroRecall: Double?
        public var exitFractions: [Double]?
        public var relativeCost: Double?
        public var seconds: Double?
        public var paretoOptimal: Bool
        /// The same numbers on the validation split, when the trial's data has one.
        public var validation: Scores?
        /// Where successive halving stopped the trial (`method: asha`), and its score there.
        public var stoppedAtEpoch: Int?
        public var rungScore: RungScore?
        /// Epochs trained and the epochs its job asks for (absent in grids run before they were recorded).
        public var epochs: Int?
        public var plannedEpochs: Int?

        enum CodingKeys: String, CodingKey {
            case trial, assignments, status, message, accuracy
            case macroF1 = "macro_f1"
            case macroPrecision = "macro_precision"
            case macroRecall = "macro_recall"
            case exitFractions = "exit_fractions"
            case relativeCost = "relative_cost"
            case seconds
            case paretoOptimal = "pareto_optimal"
            case validation
            case stoppedAtEpoch = "stopped_at_epoch"
            case rungScore = "rung_score"
            case epochs
            case plannedEpochs = "planned_epochs"
        }

        /// The status as the leaderboard shows it.
        var statusText: String {
            switch status {
            case .failed: return "failed: \(message ?? "")"
            case .stopped:
                guard let epoch = stoppedAtEpoch, let score = rungScore else { return "stopped" }
                return String(format: "stopped after epoch %d (%.4f < %.4f)", epoch, score.value, score.cutoff ?? .nan)
            default: return status.rawValue
            }
        }

        /// The metric on the split trials are ranked on.
        func value(_ metric: SelectionMetric, onValidation: Bool) -> Double? {
            if onValidation { return validation.map(metric.value(of:)) }
            guard let accuracy, let macroF1, let macroPrecision, let macroRecall, let relativeCost else { return nil }
            return metric.value(
                of: Scores(
                    accuracy: accuracy, macroF1: macroF1, macroPrecision: macroPrecision, macroRecall: macroRecall,
                    relativeCost: relativeCost))
        }
    }

    public var folder: String
    public var metric: SelectionMetric
    /// True when trials are ranked on the validation split, false when on the test split.
    public var rankedOnValidation: Bool
    public var keys: [String]
    /// Finished trials sorted by the metric (best first), then unfinished and failed ones.
    public var rows: [Row]

    /// Reads `grid.json`, every trial's status.json and eval.json in `folder`.
    public static func load(folder: String, metric: SelectionMetric? = nil) throws -> GridSummary {
        let grid = GridFolder(path: folder)
        let manifestFile = grid.manifestFile
        guard let data = FileManager.default.contents(atPath: manifestFile) else {
            throw TrainingError("\(manifestFile): no such file (is \(folder) a grid folder?)")
        }
        let manifest = try JSONDecoder().decode(GridRunner.Manifest.self, from: data)
        let metric = metric ?? manifest.metric
        var rows: [Row] = []
        for (index, overrides) in manifest.trials.enumerated() {
            let name = GridFolder.trialName(index)
            let path = grid.trial(name).path
            let status = TrialStatus.read(path)
            let assignments = overrides.map { o -> [String] in
                let parts = o.split(separator: "=", maxSplits: 1).map(String.init)
                return [parts[0], parts.count > 1 ? parts[1] : ""]
            }
            var row = Row(
                trial: name, assignments: assignments, status: status?.status ?? .pending, message: status?.message,
                seconds: status?.seconds, paretoOptimal: false, stoppedAtEpoch: status?.stoppedAtEpoch,
                rungScore: status?.stoppedAtEpoch == nil ? nil : status?.rungs?.last, epochs: status?.epochs,
                plannedEpochs: status?.plannedEpochs)
            let run = RunDirectory(path: path)
            func statistics(_ file: String) -> RoutingStatistics? {
                FileManager.default.contents(atPath: file).flatMap {
                    try? JSONDecoder().decode(RoutingStatistics.self, from: $0)
                }
            }
            if row.status == .done, let s = statistics(run.evaluationFile) {
                row.accuracy = s.accuracy
                row.macroF1 = s.macroF1
                row.macroPrecision = s.macroPrecision
                row.macroRecall = s.macroRecall
                row.exitFractions = s.exitFractions
                row.relativeCost = s.relativeCost
                row.validation = statistics(run.validationFile)?.scores
            }
            rows.append(row)
        }
        let finished = rows.indices.filter { rows[$0].accuracy != nil && rows[$0].relativeCost != nil }
        for (i, optimal) in zip(finished, paretoOptimal(finished.map { (rows[$0].accuracy!, rows[$0].relativeCost!) }))
        {
            rows[i].paretoOptimal = optimal
        }
        let finishedRows = finished.map { rows[$0] }
        let onValidation = !finishedRows.isEmpty && finishedRows.allSatisfy { $0.validation != nil }
        // Finished trials by the metric; then those stopped early, the later rung first, each
        // rung by its score; then the rest.
        rows.sort { a, b in
            switch (a.value(metric, onValidation: onValidation), b.value(metric, onValidation: onValidation)) {
            case (let x?, let y?): return metric.isBetter(x, than: y)
            case (.some, nil): return true
            case (nil, .some): return false
            default: break
            }
            switch (a.rungScore, b.rungScore) {
            case (let x?, let y?):
                return x.epoch != y.epoch ? x.epoch > y.epoch : metric.isBetter(x.value, than: y.value)
            case (.some, nil): return true
            case (nil, .some): return false
            default: return a.trial < b.trial
            }
        }
        let keys =
            manifest.trials.first?.compactMap { $0.split(separator: "=").first.map(String.init) }.filter {
                $0 != "name"
            } ?? []
        return GridSummary(folder: folder, metric: metric, rankedOnValidation: onValidation, keys: keys, rows: rows)
    }

    /// What stopping trials early saved, when any was (`method: asha`): "trained 420 of 1200
    /// epochs (65.0 % saved); 8 of 12 trials stopped early".
    public var savings: String? {
        let stopped = rows.filter { $0.status == .stopped }.count
        guard stopped > 0 else { return nil }
        let trained = rows.compactMap(\.epochs).reduce(0, +)
        let planned = rows.compactMap(\.plannedEpochs).reduce(0, +)
        return String(
            format: "trained %d of %d epochs (%.1f %% saved); %d of %d trials stopped early", trained, planned,
            100 * (1 - Double(trained) / Double(max(planned, 1))), stopped, rows.count)
    }

    /// "macro_f1 on the validation split", for the pages and the command's output.
    public var ranking: String {
        if rankedOnValidation { return "\(metric) on the validation split" }
        let some = rows.contains { $0.validation != nil }
        return
            "\(metric) on the test split (\(some ? "not every trial's data has a" : "the data has no") validation split)"
    }

    private func varied(_ row: Row) -> [String] {
        keys.map { key in row.assignments.first { $0[0] == key }?[1] ?? "" }
    }

    private static func format(_ value: Double?, _ pattern: String) -> String {
        value.map { String(format: pattern, $0) } ?? ""
    }

    public var csv: String {
        let exits = rows.compactMap(\.exitFractions).map(\.count).max() ?? 0
        var lines = [
            (["rank", "trial", "status"] + keys + ["accuracy", "macro_f1", "macro_precision", "macro_recall"]
                + (0..<exits).map { "exit\($0 + 1)_fraction" } + [
                    "relative_cost", "seconds", "pareto_optimal", "message", "stopped_at_epoch", "rung_score",
                ]
                + (rankedOnValidation ? ["validation_\(metric)"] : [])).joined(separator: ",")
        ]
        for (k, row) in rows.enumerated() {
            let quote = { (text: String) in "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }
            var cells = ["\(k + 1)", row.trial, row.status.rawValue] + varied(row).map(quote)
            cells += [row.accuracy, row.macroF1, row.macroPrecision, row.macroRecall].map {
                $0.map { String($0) } ?? ""
            }
            cells += (0..<exits).map { e in row.exitFractions.map { e < $0.count ? String($0[e]) : "" } ?? "" }
            cells += [
                row.relativeCost.map { String($0) } ?? "", row.seconds.map { String(format: "%.1f", $0) } ?? "",
                row.paretoOptimal ? "1" : "0", quote(row.message ?? ""), row.stoppedAtEpoch.map { String($0) } ?? "",
                row.rungScore.map { String($0.value) } ?? "",
            ]
            if rankedOnValidation { cells.append(row.validation.map { String(metric.value(of: $0)) } ?? "") }
            lines.append(cells.joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The ranking metric's column on the validation split, when trials are ranked there.
    private var validationHeader: [String] { rankedOnValidation ? ["validation \(metric)"] : [] }

    private func validationCell(_ row: Row) -> [String] {
        guard rankedOnValidation else { return [] }
        let value = row.validation.map(metric.value(of:))
        return [metric == .relativeCost ? Self.format(value, "%.3f") : Self.format(value.map { $0 * 100 }, "%.2f")]
    }

    public var markdown: String {
        let header = keys + validationHeader
        var lines = [
            "| # | trial | " + header.joined(separator: " | ")
                + " | accuracy % | macro F1 % | exits % | relative cost | time (s) | Pareto | status |",
            "|" + Array(repeating: "---", count: header.count + 9).joined(separator: "|") + "|",
        ]
        for (k, row) in rows.enumerated() {
            let exits =
                row.exitFractions.map { $0.map { String(format: "%.1f", $0 * 100) }.joined(separator: " / ") } ?? ""
            let status = row.statusText
            lines.append(
                "| \(k + 1) | \(row.trial) | " + (varied(row) + validationCell(row)).joined(separator: " | ")
                    + " | \(Self.format(row.accuracy.map { $0 * 100 }, "%.2f")) | \(Self.format(row.macroF1.map { $0 * 100 }, "%.2f")) | \(exits) | \(Self.format(row.relativeCost, "%.3f")) | \(Self.format(row.seconds, "%.0f")) | \(row.paretoOptimal ? "yes" : "") | \(status.replacingOccurrences(of: "|", with: "/")) |"
            )
        }
        return lines.joined(separator: "\n")
    }

    /// Accuracy against relative cost of every finished trial, the Pareto front joined.
    public var scatter: String {
        let done = rows.filter { $0.accuracy != nil }
        let front = done.filter(\.paretoOptimal).sorted { $0.relativeCost! < $1.relativeCost! }
        return SVGChart(
            id: "grid_pareto", title: "Trials: accuracy vs relative cost", xLabel: "relative cost", yLabel: "accuracy"
        ).lines([
            SVGChart.Series(
                name: "trials", points: done.map { (x: $0.relativeCost!, y: $0.accuracy!) }, color: "#1f77b4",
                markers: true, line: false),
            SVGChart.Series(
                name: "Pareto front", points: front.map { (x: $0.relativeCost!, y: $0.accuracy!) }, color: "#d62728",
                markers: true),
        ])
    }

    /// The points of `scatter`: every finished trial's accuracy and relative cost.
    public var scatterCSV: String {
        var table = CSVTable(["trial", "relative_cost", "accuracy", "pareto_optimal"])
        for row in rows where row.accuracy != nil {
            table.append([
                .text(row.trial), .optional(row.relativeCost), .optional(row.accuracy), row.paretoOptimal ? 1 : 0,
            ])
        }
        return table.text
    }

    /// leaderboard.csv, leaderboard.json, leaderboard.md, pareto.svg with pareto.csv, and
    /// report.html in the grid folder; each finished trial's report.html with its figures and
    /// their CSVs in `<trial>/figures`.
    public func write() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let grid = GridFolder(path: folder)
        try AtomicFile.write(Data(csv.utf8), to: grid.leaderboard("csv"))
        try AtomicFile.write(try encoder.encode(rows), to: grid.leaderboard("json"))
        try AtomicFile.write(Data((markdown + "\n").utf8), to: grid.leaderboard("md"))
        let scatter = self.scatter
        try AtomicFile.write(Data(scatter.utf8), to: grid.paretoChart)
        try AtomicFile.write(Data(scatterCSV.utf8), to: grid.paretoData)
        // Each finished trial's own page, linked from the grid's.
        for row in rows where row.status == .done {
            if let report = try? RunReport(run: grid.trial(row.trial)) { try report.write() }
        }
        let table =
            "<table border=\"1\" cellpadding=\"3\"><tr><th>#</th><th>trial</th>"
            + (keys + validationHeader).map { "<th>\(SVGChart.escape($0))</th>" }.joined()
            + "<th>accuracy</th><th>macro F1</th><th>exits</th><th>relative cost</th><th>seconds</th><th>Pareto</th><th>status</th></tr>"
            + rows.enumerated().map { k, row in
                "<tr><td>\(k + 1)</td><td><a href=\"\(row.trial)/\(RunDirectory.reportFileName)\">\(row.trial)</a></td>"
                    + (varied(row) + validationCell(row)).map { "<td>\(SVGChart.escape($0))</td>" }.joined()
                    + "<td>\(Self.format(row.accuracy, "%.4f"))</td><td>\(Self.format(row.macroF1, "%.4f"))</td><td>\(row.exitFractions.map { $0.map { String(format: "%.3f", $0) }.joined(separator: " / ") } ?? "")</td>"
                    + "<td>\(Self.format(row.relativeCost, "%.3f"))</td><td>\(Self.format(row.seconds, "%.0f"))</td><td>\(row.paretoOptimal ? "yes" : "")</td><td>\(SVGChart.escape(row.statusText))</td></tr>"
            }.joined() + "</table>"
        let html = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>cgt grid: \(SVGChart.escape(folder))</title>
            <style>body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}table{border-collapse:collapse;font-size:0.9em}</style></head><body>
            <h1>Grid \(SVGChart.escape(folder))</h1>
            <p>\(rows.filter { $0.status == .done }.count) of \(rows.count) trials done, sorted by \(SVGChart.escape(ranking)); each trial links to its own page (<code>cgt report</code> on a trial's folder adds the threshold sweep).\(savings.map { " Successive halving: \(SVGChart.escape($0))." } ?? "")</p>
            <figure>\(scatter)<figcaption><a href="\(GridFolder.paretoDataName)">\(GridFolder.paretoDataName)</a>: the points drawn</figcaption></figure>
            \(table)
            </body></html>
            """
        try AtomicFile.write(Data(html.utf8), to: grid.reportFile)
    }
}
