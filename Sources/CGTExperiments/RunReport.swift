import CGTCheckpoint
import CGTData
import CGTEvaluation
import CGTFiles
import CGTJob
import CGTModel
import CGTTraining
import Foundation

/// One self-contained HTML page about a run: training curves per exit (the paper's Figures 2
/// and 3), where samples leave, accuracy against cost over thresholds with the Pareto front,
/// and reliability diagrams. Figures are inline SVG, also written one file each.
public struct RunReport {
    /// What `cgt eval` adds to the routing statistics in eval.json (all optional: training's
    /// own eval.json has none of it).
    struct Extras: Decodable {
        var policy: ExitPolicy?
        var confidenceQuality: [ConfidenceQuality]?
        var perClassExitFractions: [[Double]]?
        var classNames: [String]?
        var sweep: ThresholdSweep?
        var latency: InferenceLatency?

        enum CodingKeys: String, CodingKey {
            case policy
            case confidenceQuality = "confidence_quality"
            case perClassExitFractions = "per_class_exit_fractions"
            case classNames = "class_names"
            case sweep, latency
        }
    }

    public let run: RunDirectory
    public let jobName: String
    public let metrics: [EpochMetrics]
    /// What the reader left out, in words (a last line of metrics.jsonl cut short by a kill).
    public let warnings: [String]
    public let statistics: RoutingStatistics
    let extras: Extras
    /// The eval.json the report reads.
    public let evaluationFile: String
    /// SHA-256 of the data that evaluation measured, when it records one.
    public let dataSHA256: String?
    /// Training's own statistics at the last epoch: on the test split (eval.json) and, when the
    /// data has one, on the validation split (validation.json).
    let finalTest: RoutingStatistics?
    let finalValidation: RoutingStatistics?
    /// The epoch kept as checkpoints/best.h5 (`training.keep_best`).
    let best: BestEpoch?

    /// Reads the run's metrics and the richest evaluation present: `<run>/eval/eval.json`
    /// (written by `cgt eval`) before `<run>/eval.json` (training's own).
    public init(run: RunDirectory) throws {
        self.run = run
        let candidates = [run.evaluation.reportFile, run.evaluationFile]
        guard let file = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }),
            let data = FileManager.default.contents(atPath: file)
        else {
            throw TrainingError("\(run.path): no eval.json (train the run to the end, or run cgt eval)")
        }
        evaluationFile = file
        do {
            statistics = try JSONDecoder().decode(RoutingStatistics.self, from: data)
            extras = try JSONDecoder().decode(Extras.self, from: data)
        } catch {
            throw TrainingError("\(file): not an evaluation cgt wrote (\(error))")
        }
        dataSHA256 = DataIdentity.read(evaluation: data).sha256
        var warnings: [String] = []
        metrics = try MetricsLog.read(run.metricsFile) { warnings.append($0) }
        self.warnings = warnings
        func decoded<T: Decodable>(_ type: T.Type, _ path: String) -> T? {
            FileManager.default.contents(atPath: path).flatMap { try? JSONDecoder().decode(type, from: $0) }
        }
        finalTest = decoded(RoutingStatistics.self, run.evaluationFile)
        finalValidation = decoded(RoutingStatistics.self, run.validationFile)
        best = decoded(BestEpoch.self, run.bestFile)
        jobName = (try? JobLoader.load(path: run.jobFile).name) ?? URL(fileURLWithPath: run.path).lastPathComponent
    }

    static func color(_ k: Int) -> String { SVGChart.palette[k % SVGChart.palette.count] }

    /// Early-exit accuracy at each evaluated epoch on the validation and the test split:
    /// metrics.jsonl's entries, then validation.json and eval.json for the last epoch.
    public func heldOutAccuracy() -> (validation: [(x: Double, y: Double)], test: [(x: Double, y: Double)]) {
        func curve(_ entry: (EpochMetrics) -> RoutingStatistics?, last: RoutingStatistics?) -> [(x: Double, y: Double)]
        {
            var points = metrics.compactMap { m in entry(m).map { (x: Double(m.epoch), y: $0.accuracy) } }
            if let last, let epoch = metrics.last?.epoch, points.last?.x != Double(epoch) {
                points.append((x: Double(epoch), y: last.accuracy))
            }
            return points
        }
        return (curve(\.validation, last: finalValidation), curve(\.evaluation, last: finalTest))
    }

    /// Bins of a reliability diagram holding fewer samples than this are drawn faint: their
    /// accuracy says little.
    static let fewSamples = 10

    /// The figures, each with the CSV of what it draws.
    public func figures() -> [Figure] {
        var figures: [Figure] = []
        let exits = statistics.exitFractions.count
        if !metrics.isEmpty {
            let epochs = metrics.map { Double($0.epoch) }
            func perExit(_ values: (EpochMetrics) -> [Double]) -> [SVGChart.Series] {
                (0..<exits).map { e in
                    SVGChart.Series(
                        name: "exit \(e + 1)",
                        points: zip(epochs, metrics.map { e < values($0).count ? values($0)[e] : 0 }).map { ($0, $1) },
                        color: Self.color(e))
                }
            }
            func table(_ column: String, _ values: (EpochMetrics) -> [Double]) -> String {
                var csv = CSVTable(["epoch", "exit", column])
                for m in metrics {
                    for (e, v) in values(m).enumerated() {
                        csv.append([.integer(m.epoch), .integer(e + 1), .number(v)])
                    }
                }
                return csv.text
            }
            figures.append(
                Figure(
                    name: "training_loss",
                    caption:
                        "Training loss of each exit per epoch (unweighted cross-entropy); a new head shows a cold-start spike, then decays.",
                    svg: SVGChart(
                        id: "training_loss", title: "Training loss per exit", xLabel: "epoch", yLabel: "cross-entropy"
                    ).lines(perExit(\.loss)),
                    csv: table("loss", \.loss)))
            figures.append(
                Figure(
                    name: "gate_weight",
                    caption:
                        "Mean gate weight lambda_e per epoch: how much each exit learns from (the paper's Figure 3).",
                    svg: SVGChart(
                        id: "gate_weight", title: "Mean gate weight per exit", xLabel: "epoch", yLabel: "mean lambda"
                    ).lines(perExit(\.gateMean)),
                    csv: table("mean_gate", \.gateMean)))
        }
        let heldOut = heldOutAccuracy()
        if !heldOut.validation.isEmpty || heldOut.test.count > 1 {
            var series: [SVGChart.Series] = []
            var csv = CSVTable(["split", "epoch", "accuracy", "kept_as_best"])
            if !heldOut.validation.isEmpty {
                series.append(
                    SVGChart.Series(name: "validation", points: heldOut.validation, color: Self.color(0), markers: true)
                )
            }
            if heldOut.test.count > 1 {
                series.append(
                    SVGChart.Series(
                        name: "test", points: heldOut.test, color: Self.color(1), dashed: true, markers: true))
            }
            for (split, points) in [(DatasetSplitName.validation, heldOut.validation), (.test, heldOut.test)] {
                for p in points {
                    let kept = split == .validation && best.map { Double($0.epoch) == p.x } == true
                    csv.append([.text(split.rawValue), .integer(Int(p.x)), .number(p.y), kept ? 1 : 0])
                }
            }
            var caption = "Early-exit accuracy at the evaluated epochs on the held-out splits."
            if let best, let point = heldOut.validation.first(where: { $0.x == Double(best.epoch) }) {
                series.append(
                    SVGChart.Series(
                        name: "best.h5", points: [point], color: Self.color(3), markers: true, line: false,
                        markerRadius: 6))
                caption +=
                    " The large marker is the epoch kept as \(RunDirectory.bestCheckpointName) (best \(best.metric) on the validation split)."
            }
            figures.append(
                Figure(
                    name: "held_out_accuracy", caption: caption,
                    svg: SVGChart(
                        id: "held_out_accuracy", title: "Held-out accuracy per epoch", xLabel: "epoch",
                        yLabel: "accuracy"
                    ).lines(series),
                    csv: csv.text))
        }
        let exitNames = (0..<exits).map { "exit \($0 + 1)" }
        var exitTable = CSVTable(["exit", "answered_fraction", "accuracy_of_answered"])
        for e in 0..<exits {
            let answered = e < statistics.answeredAccuracy.count ? statistics.answeredAccuracy[e] : nil
            exitTable.append([.integer(e + 1), .number(statistics.exitFractions[e]), .optional(answered)])
        }
        figures.append(
            Figure(
                name: "exit_distribution",
                caption:
                    "Share of test samples each exit answers, and the accuracy on the samples it answers (0 where it answers none).",
                svg: SVGChart(
                    id: "exit_distribution", title: "Where test samples leave", xLabel: "exit", yLabel: "fraction"
                ).bars(
                    categories: exitNames,
                    series: [
                        ("answered", statistics.exitFractions, Self.color(0)),
                        ("accuracy of answered", statistics.answeredAccuracy.map { $0 ?? 0 }, Self.color(2)),
                    ],
                    yRange: 0...1),
                csv: exitTable.text))
        if let perClass = extras.perClassExitFractions, !perClass.isEmpty {
            let names = (0..<perClass.count).map { c in
                extras.classNames.map { c < $0.count ? $0[c] : "\(c)" } ?? "\(c)"
            }
            var chart = SVGChart(
                id: "per_class_routing", title: "Exit per class", xLabel: "", yLabel: "fraction of the class")
            chart.width = max(560, Double(perClass.count) * 46 + 220)
            chart.height = 380
            var csv = CSVTable(["class", "name", "exit", "fraction"])
            for (c, row) in perClass.enumerated() {
                for (e, v) in row.enumerated() {
                    csv.append([.integer(c), .text(names[c]), .integer(e + 1), .number(v)])
                }
            }
            figures.append(
                Figure(
                    name: "per_class_routing",
                    caption: "For each class, the fraction of its test samples each exit answers.",
                    svg: chart.bars(
                        categories: names,
                        series: (0..<exits).map { e in
                            (exitNames[e], perClass.map { e < $0.count ? $0[e] : 0 }, Self.color(e))
                        },
                        yRange: 0...1),
                    csv: csv.text))
        }
        if let sweep = extras.sweep, !sweep.points.isEmpty {
            let curve = sweep.points.map { (x: $0.relativeCost, y: $0.accuracy) }
            let front = sweep.points.filter(\.paretoOptimal).sorted { $0.relativeCost < $1.relativeCost }.map {
                (x: $0.relativeCost, y: $0.accuracy)
            }
            let operating = [(x: statistics.relativeCost, y: statistics.accuracy)]
            let full = Double(statistics.fullNetworkFLOPs)
            var csv = CSVTable([
                "series", "threshold", "relative_cost", "expected_flops", "accuracy", "macro_f1", "pareto_optimal",
            ])
            for p in sweep.points {
                csv.append([
                    "sweep", .number(p.threshold), .number(p.relativeCost), .number(p.relativeCost * full),
                    .number(p.accuracy), .number(p.macroF1), p.paretoOptimal ? 1 : 0,
                ])
            }
            csv.append([
                "evaluated", .number(statistics.tau), .number(statistics.relativeCost),
                .number(statistics.expectedFLOPs), .number(statistics.accuracy), .number(statistics.macroF1), .empty,
            ])
            figures.append(
                Figure(
                    name: "accuracy_vs_cost",
                    caption:
                        "Early-exit accuracy against relative cost (expected FLOPs over the full network's \(statistics.fullNetworkFLOPs)) for thresholds \(SVGChart.label(sweep.points.first!.threshold)) to \(SVGChart.label(sweep.points.last!.threshold)) (\(sweep.criterion.rawValue)); the Pareto front and the evaluated threshold marked.",
                    svg: SVGChart(
                        id: "accuracy_vs_cost", title: "Accuracy vs cost over thresholds", xLabel: "relative cost",
                        yLabel: "accuracy"
                    ).lines([
                        SVGChart.Series(
                            name: "all thresholds", points: curve, color: "#999999", markers: true, line: false),
                        SVGChart.Series(name: "Pareto front", points: front, color: Self.color(3), markers: true),
                        SVGChart.Series(
                            name: "evaluated", points: operating, color: Self.color(0), markers: true, line: false,
                            markerRadius: 6),
                    ]),
                    csv: csv.text))
        }
        if let quality = extras.confidenceQuality {
            for (e, q) in quality.enumerated() {
                figures.append(Self.reliabilityFigure(exit: e, quality: q))
            }
        }
        return figures
    }

    /// The reliability diagram of one exit: accuracy against mean confidence per bin, each
    /// bin's marker area proportional to its sample count and bins of few samples drawn faint.
    static func reliabilityFigure(exit e: Int, quality q: ConfidenceQuality) -> Figure {
        let filled = q.bins.filter { $0.count > 0 }
        var bins = SVGChart.Series(
            name: "exit \(e + 1)", points: filled.map { (x: $0.meanConfidence, y: $0.accuracy) }, color: color(e),
            markers: true)
        bins.lineWidth = 1
        bins.lineOpacity = 0.45
        bins.radii = SVGChart.areaProportionalRadii(filled.map(\.count))
        bins.opacities = filled.map { $0.count < fewSamples ? 0.25 : 0.85 }
        bins.tooltips = filled.map {
            String(
                format: "confidence %.3f-%.3f: %d sample%@, mean confidence %.3f, accuracy %.3f", $0.lower, $0.upper,
                $0.count, $0.count == 1 ? "" : "s", $0.meanConfidence, $0.accuracy)
        }
        var csv = CSVTable(["bin_lower", "bin_upper", "count", "mean_confidence", "accuracy", "marker_radius"])
        let radii = SVGChart.areaProportionalRadii(q.bins.map(\.count))
        for (b, radius) in zip(q.bins, radii) {
            csv.append([
                .number(b.lower), .number(b.upper), .integer(b.count), .number(b.meanConfidence), .number(b.accuracy),
                .number(radius),
            ])
        }
        let largest = filled.map(\.count).max() ?? 0
        return Figure(
            name: "reliability_exit\(e + 1)",
            caption: String(
                format:
                    "Reliability of exit %d: accuracy against mean confidence per bin (%d bins); marker area proportional to the bin's samples (the largest holds %d), bins under %d samples faint. ECE %.4f, failure-prediction AUROC %@.",
                e + 1, q.bins.count, largest, fewSamples, q.ece, q.auroc.map { String(format: "%.4f", $0) } ?? "-"),
            svg: SVGChart(
                id: "reliability_exit\(e + 1)", title: "Reliability, exit \(e + 1)", xLabel: "confidence",
                yLabel: "accuracy"
            ).lines(
                [
                    SVGChart.Series(
                        name: "perfect calibration", points: [(0, 0), (1, 1)], color: "#999999", dashed: true),
                    bins,
                ], xRange: 0...1, yRange: 0...1),
            csv: csv.text)
    }

    /// Writes the run's page (`report.html`) with its figures and their CSVs (`figures/`);
    /// returns the figures drawn.
    @discardableResult
    public func write() throws -> [Figure] {
        let figures = self.figures()
        try Figure.write(figures, to: run.figuresFolder)
        try AtomicFile.write(
            Data(html(figures: figures, figureFolder: RunDirectory.figuresFolderName).utf8), to: run.reportFile)
        return figures
    }

    /// The page, with every figure inline; with `figureFolder` (relative to the page), each
    /// caption links the figure's CSV there.
    public func html(figures: [Figure], figureFolder: String? = nil) -> String {
        let s = statistics
        func percent(_ v: Double) -> String { String(format: "%.2f %%", v * 100) }
        var rows = [
            ("accuracy", percent(s.accuracy)),
            (
                "macro F1 / precision / recall",
                "\(percent(s.macroF1)) / \(percent(s.macroPrecision)) / \(percent(s.macroRecall))"
            ),
            ("exit fractions", s.exitFractions.map(percent).joined(separator: ", ")),
            (
                "relative cost",
                String(format: "%.3f (expected %.0f FLOPs of %d)", s.relativeCost, s.expectedFLOPs, s.fullNetworkFLOPs)
            ),
            ("test samples", "\(s.samples)"),
        ]
        if let v = finalValidation {
            rows.append(
                (
                    "validation split, last epoch",
                    "accuracy \(percent(v.accuracy)), macro F1 \(percent(v.macroF1)), relative cost \(String(format: "%.3f", v.relativeCost))"
                ))
        }
        if let best {
            rows.append(
                (
                    "best checkpoint (keep_best)",
                    "epoch \(best.epoch): \(best.metric) \(SVGChart.label(best.value)) on the validation split, \(RunDirectory.bestCheckpointName)"
                ))
        }
        if let policy = extras.policy {
            rows.append(
                (
                    "exit policy",
                    "\(policy.criterion.rawValue), thresholds \(policy.thresholds.map { SVGChart.label(Double($0)) }.joined(separator: ", ")), fallback \(policy.fallback.rawValue)"
                ))
        } else {
            rows.append(("exit policy", "max_probability at tau \(SVGChart.label(s.tau))"))
        }
        if let latency = extras.latency {
            rows.append(
                (
                    "latency, batch 1 (median)",
                    String(
                        format: "early exit %.1f us, full network %.1f us: %.2fx measured, %.2fx by FLOPs",
                        latency.earlyExit.median, latency.fullNetwork.median, latency.measuredSpeedup,
                        latency.flopSpeedup)
                ))
        }
        let missing =
            extras.sweep == nil
            ? "<p class=\"note\">No threshold sweep in \(SVGChart.escape(evaluationFile)): <code>cgt eval --sweep 0.5:0.99:0.01</code> adds the accuracy-cost figure.</p>"
            : ""
        let intro = [
            "<p>Run folder <code>\(SVGChart.escape(run.path))</code>; evaluation from <code>\(SVGChart.escape(evaluationFile))</code>; \(metrics.count) epochs in metrics.jsonl.</p>",
            "<table>"
                + rows.map { "<tr><td>\(SVGChart.escape($0.0))</td><td>\(SVGChart.escape($0.1))</td></tr>" }.joined()
                + "</table>",
            missing,
        ]
        return ReportPage.html(
            title: "cgt report: \(jobName)", heading: jobName, intro: intro, figures: figures,
            figureFolder: figureFolder)
    }
}
