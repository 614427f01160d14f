import CGTCheckpoint
import CGTEvaluation
import CGTFiles
import CGTTraining
import Foundation

/// Several runs side by side on one page: runs grouped as `cgt table` groups them (job name
/// and data), each group's accuracy against expected FLOPs over the threshold sweep as a mean
/// curve with a band of ± one standard deviation over its seeds, held-out accuracy per epoch,
/// where samples leave, and a summary table. Figures are inline SVG, also written one file
/// each with the CSV of what they draw.
public struct ComparisonReport {
    /// One group: a row of the results table and each of its runs' reports.
    public struct Group {
        public var row: ResultsTable.Row
        public var label: String
        /// The report of each run folder of `row`, in the same order.
        public var reports: [RunReport]
    }

    public let table: ResultsTable
    public let groups: [Group]
    /// Sentences about what the figures leave out, and why.
    public private(set) var notes: [String] = []

    /// Groups `runs` (see `ResultsTable.load`) and reads each run's report.
    public init(runs: [String]) throws {
        table = try ResultsTable.load(runs: runs)
        groups = try zip(table.rows, table.labels).map { row, label in
            Group(row: row, label: label, reports: try row.folders.map { try RunReport(run: RunDirectory(path: $0)) })
        }
        if let note = table.unknownDataNote { notes.append(note) }
    }

    static func color(_ k: Int) -> String { SVGChart.palette[k % SVGChart.palette.count] }

    /// A run's Pareto-optimal sweep points as (expected FLOPs per sample, accuracy), cheapest
    /// first, one point per cost (the most accurate); nil when the run has no usable sweep.
    static func paretoCurve(_ report: RunReport) -> [(x: Double, y: Double)]? {
        guard let sweep = report.extras.sweep, !sweep.points.isEmpty else { return nil }
        let full = Double(report.statistics.fullNetworkFLOPs)
        var curve: [(x: Double, y: Double)] = []
        for p in sweep.points.filter(\.paretoOptimal).sorted(by: { $0.relativeCost < $1.relativeCost }) {
            let point = (x: p.relativeCost * full, y: p.accuracy)
            if let last = curve.last, last.x == point.x {
                curve[curve.count - 1].y = max(last.y, point.y)
            } else {
                curve.append(point)
            }
        }
        return curve
    }

    /// The accuracy a seed attains within a budget of `x`: that of the most expensive point of
    /// its Pareto front (sorted by cost, so also the most accurate) costing at most `x`; nil
    /// below its cheapest point.
    static func attainable(_ curve: [(x: Double, y: Double)], within x: Double) -> Double? {
        curve.last { $0.x <= x * (1 + 1e-12) }?.y
    }

    /// One point of a band: the mean, sample standard deviation, least and greatest of the
    /// seeds' values at `x`.
    public struct BandPoint: Equatable {
        public var x: Double
        public var mean: Double
        public var deviation: Double
        public var low: Double
        public var high: Double

        /// The band at `x` over the seeds' `values` (not empty).
        init(x: Double, values: [Double]) {
            (mean, deviation) = ResultsTable.meanAndDeviation(values)
            self.x = x
            low = values.min()!
            high = values.max()!
        }
    }

    /// The accuracy each seed attains within a budget (see `attainable`), at every cost where
    /// one of them changes (each seed's Pareto points), from the largest of the seeds' cheapest
    /// points, where every seed has one, to the most expensive Pareto point of any seed. Between
    /// two of these costs every seed's value, and so the band, is constant. Nil without curves.
    public static func band(_ curves: [[(x: Double, y: Double)]]) -> [BandPoint]? {
        guard !curves.isEmpty, curves.allSatisfy({ !$0.isEmpty }) else { return nil }
        let low = curves.map { $0.first!.x }.max()!
        let costs = Set(curves.flatMap { $0.map(\.x) }.filter { $0 >= low }).sorted()
        return costs.map { x in
            BandPoint(x: x, values: curves.map { attainable($0, within: x)! })
        }
    }

    /// Points that draw a step function through `points` (x rising): level until the next x, then up or down.
    static func steps(_ points: [(x: Double, y: Double)]) -> [(x: Double, y: Double)] {
        var drawn: [(x: Double, y: Double)] = []
        for (k, p) in points.enumerated() {
            if k > 0 { drawn.append((x: p.x, y: points[k - 1].y)) }
            drawn.append(p)
        }
        return drawn
    }

    /// A unit for FLOPs per sample that keeps tick labels short: the divisor and its name.
    static func flopUnit(_ largest: Double) -> (divisor: Double, name: String) {
        switch largest {
        case ..<1e4: return (1, "FLOPs")
        case ..<1e7: return (1e3, "kFLOPs")
        case ..<1e10: return (1e6, "MFLOPs")
        default: return (1e9, "GFLOPs")
        }
    }

    /// The figures, each with the CSV of what it draws.
    public func figures() -> [Figure] {
        var figures: [Figure] = []
        if let costs = accuracyAgainstFLOPs() { figures.append(costs) }
        if let budgeted = budgetedCurves() { figures.append(budgeted) }
        if let curves = heldOutAccuracy() { figures.append(curves) }
        figures.append(exitDistribution())
        return figures
    }

    /// Runs of a group whose sweep can be drawn, and sentences about those that cannot.
    func sweptReports(_ group: Group) -> (reports: [(folder: String, seed: UInt64, report: RunReport)], notes: [String])
    {
        var usable: [(folder: String, seed: UInt64, report: RunReport)] = []
        var notes: [String] = []
        for (k, report) in group.reports.enumerated() {
            let folder = group.row.folders[k]
            if report.extras.sweep?.points.isEmpty ?? true {
                notes.append(
                    "\(folder) has no threshold sweep in \(report.evaluationFile) (cgt report without --no-eval, or cgt eval --sweep, adds one)."
                )
            } else if let swept = report.dataSHA256, let data = group.row.data.sha256, swept != data {
                notes.append(
                    "\(report.evaluationFile) evaluates other data than \(folder)/eval.json (SHA-256 \(swept.prefix(8)), not \(data.prefix(8))); its sweep is left out."
                )
            } else {
                usable.append((folder, group.row.seeds[k], report))
            }
        }
        return (usable, notes)
    }

    /// Accuracy against expected FLOPs per sample: per group, the mean over its seeds of the
    /// accuracy attainable within each budget, with a band of ± one standard deviation, and
    /// each seed's Pareto-optimal thresholds as small markers.
    func accuracyAgainstFLOPs() -> Figure? {
        struct Swept {
            var folder: String
            var seed: UInt64
            var curve: [(x: Double, y: Double)]
            var report: RunReport
        }
        var perGroup: [(group: Group, color: String, runs: [Swept], band: [BandPoint])] = []
        var notes: [String] = []
        for (k, group) in groups.enumerated() {
            let (usable, skipped) = sweptReports(group)
            notes += skipped
            let runs = usable.compactMap { run in
                Self.paretoCurve(run.report).map {
                    Swept(folder: run.folder, seed: run.seed, curve: $0, report: run.report)
                }
            }
            guard let band = Self.band(runs.map(\.curve)) else { continue }
            perGroup.append((group, Self.color(k), runs, band))
        }
        guard !perGroup.isEmpty else { return nil }
        let largest = perGroup.flatMap { $0.runs.flatMap { $0.curve.map(\.x) } }.max() ?? 1
        let unit = Self.flopUnit(largest)
        var series: [SVGChart.Series] = []
        var bands: [SVGChart.Band] = []
        var csv = CSVTable([
            "group", "series", "run", "seed", "threshold", "expected_flops", "relative_cost", "accuracy",
            "accuracy_std", "accuracy_min", "accuracy_max", "seeds", "pareto_optimal",
        ])
        for entry in perGroup {
            let label = entry.group.label
            let seeds = entry.runs.count
            let mean = Self.steps(entry.band.map { (x: $0.x / unit.divisor, y: $0.mean) })
            var line = SVGChart.Series(
                name: seeds > 1 ? "\(label): mean of \(seeds) seeds" : "\(label): seed \(entry.runs[0].seed)",
                points: mean, color: entry.color, markers: mean.count == 1, markerRadius: 4)
            line.lineWidth = 2.2
            series.append(line)
            if seeds > 1 {
                let upper = Self.steps(entry.band.map { (x: $0.x / unit.divisor, y: $0.mean + $0.deviation) })
                let lower = Self.steps(entry.band.map { (x: $0.x / unit.divisor, y: $0.mean - $0.deviation) })
                bands.append(
                    SVGChart.Band(
                        name: "\(label): ± 1 std", points: zip(upper, lower).map { ($0.x, $1.y, $0.y) },
                        color: entry.color))
            }
            for p in entry.band {
                csv.append([
                    .text(label), "mean", .empty, .empty, .empty, .number(p.x), .empty, .number(p.mean),
                    .number(p.deviation), .number(p.low), .number(p.high), .integer(seeds), .empty,
                ])
            }
            for run in entry.runs {
                var markers = SVGChart.Series(
                    name: "\(label): seed \(run.seed)", points: run.curve.map { (x: $0.x / unit.divisor, y: $0.y) },
                    color: entry.color, markers: true, line: false, markerRadius: 2.5)
                markers.opacities = run.curve.map { _ in 0.5 }
                markers.tooltips = run.curve.map {
                    "\(label), \(run.folder) (seed \(run.seed)): accuracy \(SVGChart.label($0.y)) at \(SVGChart.label($0.x / unit.divisor)) \(unit.name)"
                }
                markers.inLegend = false
                series.append(markers)
                let full = Double(run.report.statistics.fullNetworkFLOPs)
                for p in run.report.extras.sweep!.points {
                    csv.append([
                        .text(label), "sweep", .text(run.folder), .integer(run.seed), .number(p.threshold),
                        .number(p.relativeCost * full), .number(p.relativeCost), .number(p.accuracy), .empty, .empty,
                        .empty, .empty, p.paretoOptimal ? 1 : 0,
                    ])
                }
            }
        }
        var chart = SVGChart(
            id: "accuracy_vs_flops", title: "Accuracy within a cost budget",
            xLabel: "expected \(unit.name) per sample", yLabel: "accuracy")
        chart.width = 760
        chart.height = 440
        var caption =
            "Early-exit accuracy on the test split against expected \(unit.name) per sample over each run's threshold sweep. Small markers: each seed's Pareto-optimal thresholds. Lines: the accuracy a seed attains within a budget of that many FLOPs (its most accurate Pareto-optimal threshold costing at most that), from the largest of the seeds' cheapest costs, where every seed has a threshold, to the most expensive Pareto point of any; drawn as steps, since a budget between two thresholds buys the cheaper one's accuracy. For several seeds, the line is their mean and the band ± one sample standard deviation."
        if !notes.isEmpty { caption += " " + notes.joined(separator: " ") }
        return Figure(
            name: "accuracy_vs_flops", caption: caption, svg: chart.lines(series, bands: bands), csv: csv.text)
    }

    /// The budgeted protocol's curves (`cgt eval --budgeted`), accuracy against expected FLOPs:
    /// per group, the mean over its seeds of each seed's envelope at common costs (where every
    /// seed's curve reaches), with a band of ± one standard deviation; nil when no run has one.
    func budgetedCurves() -> Figure? {
        var series: [SVGChart.Series] = []
        var bands: [SVGChart.Band] = []
        var csv = CSVTable([
            "group", "expected_flops", "accuracy", "accuracy_std", "accuracy_min", "accuracy_max", "seeds",
        ])
        let curves = groups.map { $0.row.budgeted.compactMap { $0 } }
        let largest = curves.flatMap { $0.flatMap { $0.points.map(\.expectedFLOPs) } }.max() ?? 1
        let unit = Self.flopUnit(largest)
        var missing: [String] = []
        for (k, group) in groups.enumerated() {
            let runs = curves[k]
            if runs.count < group.row.budgeted.count { missing.append(group.label) }
            guard !runs.isEmpty else { continue }
            let low = runs.map { $0.points.map(\.expectedFLOPs).min() ?? 0 }.max()!
            let high = runs.map { $0.points.map(\.expectedFLOPs).max() ?? 0 }.min()!
            guard high >= low else { continue }
            let costs = (0...60).map { low + (high - low) * Double($0) / 60 }
            let points = costs.map { x in BandPoint(x: x, values: runs.map { $0.accuracy(atExpectedFLOPs: x) }) }
            let color = Self.color(k)
            let label = runs.count > 1 ? "\(group.label): mean of \(runs.count) seeds" : group.label
            var line = SVGChart.Series(
                name: label, points: points.map { (x: $0.x / unit.divisor, y: $0.mean) }, color: color)
            line.lineWidth = 2.2
            series.append(line)
            if runs.count > 1 {
                bands.append(
                    SVGChart.Band(
                        name: "\(group.label): ± 1 std",
                        points: points.map { ($0.x / unit.divisor, $0.mean - $0.deviation, $0.mean + $0.deviation) },
                        color: color))
            }
            for p in points {
                csv.append([
                    .text(group.label), .number(p.x), .number(p.mean), .number(p.deviation), .number(p.low),
                    .number(p.high), .integer(runs.count),
                ])
            }
        }
        guard !series.isEmpty else { return nil }
        var chart = SVGChart(
            id: "budgeted_curves", title: "Budgeted protocol (MSDNet)", xLabel: "expected \(unit.name) per sample",
            yLabel: "accuracy")
        chart.width = 760
        chart.height = 440
        var caption =
            "Test accuracy against expected \(unit.name) per sample under the budgeted protocol of cgt eval --budgeted: exit thresholds fitted on the validation split for exit proportions q^k, q 0.05-2.00, each seed's curve taken along its upper envelope. Lines: the mean over a group's seeds at costs every seed's curve reaches; band: ± one sample standard deviation. The table's budgeted column is each curve's mean accuracy over its relative-cost range."
        if !missing.isEmpty {
            caption +=
                " Runs without a budgeted curve in eval.json are left out (in \(missing.joined(separator: ", ")))."
        }
        return Figure(name: "budgeted_curves", caption: caption, svg: chart.lines(series, bands: bands), csv: csv.text)
    }

    /// Held-out accuracy per epoch: per group, the mean over its seeds at the epochs all of
    /// them evaluated, with a band of ± one standard deviation.
    func heldOutAccuracy() -> Figure? {
        var series: [SVGChart.Series] = []
        var bands: [SVGChart.Band] = []
        var csv = CSVTable([
            "group", "split", "epoch", "accuracy", "accuracy_std", "accuracy_min", "accuracy_max", "seeds",
        ])
        var splits: Set<String> = []
        for (k, group) in groups.enumerated() {
            let curves = group.reports.map { $0.heldOutAccuracy() }
            let onValidation = curves.allSatisfy { !$0.validation.isEmpty }
            let chosen = curves.map { onValidation ? $0.validation : $0.test }
            let split = onValidation ? "validation" : "test"
            let epochs =
                chosen.map { Set($0.map(\.x)) }.reduce(nil) { (common: Set<Double>?, next) in
                    common.map { $0.intersection(next) } ?? next
                }.map { $0.sorted() } ?? []
            guard epochs.count > 1 else { continue }
            splits.insert(split)
            let points = epochs.map { epoch in
                BandPoint(x: epoch, values: chosen.map { curve in curve.first { $0.x == epoch }!.y })
            }
            let color = Self.color(k)
            let seeds = group.reports.count
            series.append(
                SVGChart.Series(
                    name: seeds > 1 ? "\(group.label): mean of \(seeds) seeds (\(split))" : "\(group.label) (\(split))",
                    points: points.map { (x: $0.x, y: $0.mean) }, color: color, markers: epochs.count < 30))
            if seeds > 1 {
                bands.append(
                    SVGChart.Band(
                        name: "\(group.label): ± 1 std",
                        points: points.map { ($0.x, $0.mean - $0.deviation, $0.mean + $0.deviation) },
                        color: color))
            }
            for p in points {
                csv.append([
                    .text(group.label), .text(split), .integer(Int(p.x)), .number(p.mean), .number(p.deviation),
                    .number(p.low), .number(p.high), .integer(seeds),
                ])
            }
        }
        guard !series.isEmpty else { return nil }
        var chart = SVGChart(
            id: "held_out_accuracy", title: "Held-out accuracy per epoch", xLabel: "epoch", yLabel: "accuracy")
        chart.width = 760
        chart.height = 400
        return Figure(
            name: "held_out_accuracy",
            caption:
                "Early-exit accuracy at the epochs evaluated during training, on the validation split where every run of a group has one, else on the test split (\(splits.sorted().joined(separator: " and ")) here); for several seeds the mean and ± one sample standard deviation at the epochs all of them evaluated (eval.every_epochs sets how often).",
            svg: chart.lines(series, bands: bands), csv: csv.text)
    }

    /// Where test samples leave, per group: the mean fraction each exit answers at the job's tau.
    func exitDistribution() -> Figure {
        let exits = groups.flatMap { $0.row.runs.map(\.exitFractions.count) }.max() ?? 0
        var csv = CSVTable(["group", "exit", "answered_fraction", "answered_fraction_std", "seeds"])
        var values = [[Double]](repeating: [], count: exits)
        for group in groups {
            for e in 0..<exits {
                let fractions = group.row.runs.map { e < $0.exitFractions.count ? $0.exitFractions[e] : 0 }
                let (mean, deviation) = ResultsTable.meanAndDeviation(fractions)
                values[e].append(mean)
                csv.append([
                    .text(group.label), .integer(e + 1), .number(mean), .number(deviation), .integer(fractions.count),
                ])
            }
        }
        var chart = SVGChart(id: "exit_distribution", title: "Where test samples leave", xLabel: "", yLabel: "fraction")
        chart.width = max(560, Double(groups.count) * Double(max(2, exits)) * 22 + 260)
        return Figure(
            name: "exit_distribution",
            caption:
                "Share of test samples each exit answers at the job's tau (training's eval.json), the mean over each group's seeds.",
            svg: chart.bars(
                categories: groups.map(\.label),
                series: (0..<exits).map { e in ("exit \(e + 1)", values[e], Self.color(e)) }, yRange: 0...1),
            csv: csv.text)
    }

    /// The summary of each group: what `cgt table` prints, plus expected FLOPs, for the page and summary.csv.
    func summary() -> (html: String, csv: String) {
        var csv = CSVTable([
            "group", "job", "method", "data", "data_sha256", "seeds", "runs", "accuracy", "accuracy_std", "macro_f1",
            "macro_f1_std", "relative_cost", "relative_cost_std", "expected_flops", "expected_flops_std",
            "budgeted_area", "budgeted_area_std", "budgeted_runs",
        ])
        var rows: [String] = []
        func cell(_ values: [Double], percent: Bool, format: String = "%.3f") -> String {
            let (mean, deviation) = ResultsTable.meanAndDeviation(values.map { percent ? $0 * 100 : $0 })
            let f = percent ? "%.2f" : format
            return values.count > 1
                ? String(format: "\(f) ± \(f)", mean, deviation) : String(format: f, mean)
        }
        let largest = groups.flatMap { $0.row.runs.map(\.expectedFLOPs) }.max() ?? 1
        let unit = Self.flopUnit(largest)
        for group in groups {
            let runs = group.row.runs
            let stats = [
                runs.map(\.accuracy), runs.map(\.macroF1), runs.map(\.relativeCost), runs.map(\.expectedFLOPs),
            ]
            .map(ResultsTable.meanAndDeviation)
            csv.append(
                [
                    .text(group.label), .text(group.row.name), .text(group.row.method),
                    .text(group.row.data.file ?? ""),
                    .text(group.row.data.sha256 ?? "unknown"),
                    .text(group.row.seeds.map(String.init).joined(separator: " ")),
                    .text(group.row.folders.joined(separator: " ")),
                ] + stats.flatMap { [CSVField.number($0.mean), .number($0.deviation)] } + budgetedFields(group.row))
            rows.append(
                "<tr><td>\(SVGChart.escape(group.label))</td><td>\(SVGChart.escape(group.row.name))</td><td>\(SVGChart.escape(group.row.data.description))</td><td>\(group.row.seeds.map(String.init).joined(separator: ", "))</td><td>\(cell(runs.map(\.accuracy), percent: true))</td><td>\(cell(runs.map(\.macroF1), percent: true))</td><td>\(cell(runs.map(\.relativeCost), percent: false))</td><td>\(cell(runs.map { $0.expectedFLOPs / unit.divisor }, percent: false, format: "%.4g"))</td><td>\(runs.first.map { SVGChart.label($0.tau) } ?? "")</td><td>\(group.row.budgetedAreaCell)</td></tr>"
            )
        }
        let html =
            "<table><tr><th>group</th><th>job</th><th>data</th><th>seeds</th><th>accuracy %</th><th>macro F1 %</th><th>relative cost</th><th>expected \(unit.name)</th><th>tau</th><th>budgeted %</th></tr>"
            + rows.joined() + "</table>"
        return (html, csv.text)
    }

    /// The budgeted area's mean, deviation and run count of a row (empty without curves).
    private func budgetedFields(_ row: ResultsTable.Row) -> [CSVField] {
        let areas = row.budgeted.compactMap { $0?.area }
        guard !areas.isEmpty else { return [.empty, .empty, .integer(0)] }
        let (mean, deviation) = ResultsTable.meanAndDeviation(areas)
        return [.number(mean), .number(deviation), .integer(areas.count)]
    }

    /// The page, with every figure inline and each caption linking its CSV in `figureFolder`.
    public func html(figures: [Figure], figureFolder: String? = RunDirectory.figuresFolderName) -> String {
        let summary = summary()
        var intro = [
            "<p>\(groups.reduce(0) { $0 + $1.reports.count }) runs in \(groups.count) groups: runs of one job (its name) on the same data (its SHA-256) form a group, and numbers are the mean ± sample standard deviation over its seeds, at each job's tau on the test split (each run's eval.json; <code>summary.csv</code> holds them).</p>",
            summary.html,
            "<ul>"
                + groups.map { group in
                    "<li>\(SVGChart.escape(group.label)): "
                        + zip(group.row.folders, group.row.seeds).map {
                            "<code>\(SVGChart.escape($0.0))</code> (seed \($0.1))"
                        }.joined(separator: ", ") + "</li>"
                }.joined() + "</ul>",
        ]
        intro += notes.map { "<p class=\"note\">\(SVGChart.escape($0))</p>" }
        return ReportPage.html(
            title: "cgt report: \(groups.map(\.label).joined(separator: " vs "))",
            heading: "Runs side by side", intro: intro, figures: figures, figureFolder: figureFolder)
    }

    /// Writes `<folder>/report.html`, `<folder>/summary.csv` and `<folder>/figures/*.svg` and `*.csv`.
    public func write(to folder: String) throws -> [Figure] {
        let drawn = figures()
        try OutputFolder.create(folder)
        let comparison = ComparisonFolder(path: folder)
        try Figure.write(drawn, to: comparison.figuresFolder)
        try AtomicFile.write(Data(summary().csv.utf8), to: comparison.summaryFile)
        try AtomicFile.write(Data(html(figures: drawn).utf8), to: comparison.reportFile)
        return drawn
    }
}
