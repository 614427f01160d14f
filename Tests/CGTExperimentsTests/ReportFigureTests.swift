import CGTCheckpoint
import CGTFiles
import CGTJob
import CGTRandom
import CGTTestSupport
import Foundation
import XCTest

@testable import CGTEvaluation
@testable import CGTExperiments
@testable import CGTTraining

/// What report figures must show a reader: enough round ticks, reliability bins sized by their
/// samples, class names whole, bands that summarise the seeds they come from, and CSV a
/// script can read back.
final class ReportFigureTests: XCTestCase {
    let directory = TemporaryDirectory("report-figures")

    /// A run that keeps its best validation epoch (`training.keep_best`): the report draws the
    /// validation curve with the kept epoch marked, and says which it is.
    func testTheReportMarksTheKeptEpoch() throws {
        let data = try Fixtures.writeDataset(
            in: directory, name: "validated.h5", features: 12, classes: 3, train: 150, test: 60, validation: 45,
            spread: 2)
        let job = try JobLoader.parse(
            "name: test", source: "test",
            overrides: [
                "data.path=\(data)", "model.hidden=[32, 32, 32]", "model.exits=[1, 2, 3]", "model.dropout=0.2",
                "training.epochs=8", "training.batch_size=32", "training.checkpoint_every=2", "optimizer.lr=0.05",
                "training.seed=3", "training.keep_best=macro_f1",
            ])
        let run = RunDirectory(path: directory.file("best"))
        try Trainer(
            job: job, run: run, communicator: nil, resume: false, progress: ProgressReporter(enabled: false)
        ).run()
        let final = try JSONDecoder().decode(
            RoutingStatistics.self, from: Data(contentsOf: URL(fileURLWithPath: run.validationFile)))
        let bestEpoch = try XCTUnwrap(run.bestEpoch()).epoch

        let report = try RunReport(run: run)
        let curves = report.heldOutAccuracy()
        let accuracies =
            try MetricsLog.read(run.metricsFile).dropLast().map { try XCTUnwrap($0.validation?.accuracy) } + [
                final.accuracy
            ]
        XCTAssertEqual(curves.validation.map(\.x), (1...8).map(Double.init))
        XCTAssertEqual(curves.validation.map(\.y), accuracies)
        XCTAssertEqual(curves.test.count, 1, "the test split is scored once, at the end")
        let figures = report.figures()
        let heldOut = try XCTUnwrap(figures.first { $0.name == "held_out_accuracy" })
        XCTAssertTrue(heldOut.caption.contains("checkpoints/best.h5"), heldOut.caption)
        XCTAssertTrue(report.html(figures: figures).contains("epoch \(bestEpoch): macro_f1"))
    }

    /// Every step is 1, 2, 2.5 or 5 times a power of ten, every tick inside the range, at least
    /// five of them and not so many that labels crowd (the issue: 2 or 3 ticks).
    func testTicksAreRoundAndAtLeastFive() {
        var ranges: [(Double, Double)] = [
            (0, 1), (0.85, 0.95), (0, 2.55), (1064.9, 1333.5), (0.9960, 0.9967), (-3, 7), (0, 0.51), (3, 7.6),
            (0.2, 0.6), (1, 12), (1, 100), (5e-6, 9e-6), (12_345, 987_654),
        ]
        var generator = SeededGenerator(seed: 18)
        for _ in 0..<500 {
            // Spans from 1e-5 to 1e5, lying up to 100 spans from zero.
            let span = pow(10, Double.random(in: -5...5, using: &generator))
            let low = span * Double.random(in: -100...100, using: &generator)
            ranges.append((low, low + span))
        }
        for (low, high) in ranges {
            let ticks = SVGChart.ticks(low, high)
            XCTAssertGreaterThanOrEqual(ticks.count, 5, "\(low)...\(high): \(ticks)")
            XCTAssertLessThanOrEqual(ticks.count, 13, "\(low)...\(high): \(ticks)")
            let span = high - low
            XCTAssertTrue(ticks.allSatisfy { $0 >= low - span * 1e-9 && $0 <= high + span * 1e-9 }, "\(ticks)")
            let step = ticks[1] - ticks[0]
            let mantissa = step / pow(10, floor(log10(step)))
            XCTAssertTrue(
                [1, 2, 2.5, 5, 10].contains { abs(mantissa - $0) < 1e-6 }, "step \(step) of \(low)...\(high)")
            for (a, b) in zip(ticks, ticks.dropFirst()) {
                XCTAssertEqual(b - a, step, accuracy: step * 1e-6, "evenly spaced: \(ticks)")
            }
        }
        XCTAssertEqual(SVGChart.ticks(0, 1), [0, 0.25, 0.5, 0.75, 1])
        XCTAssertEqual(SVGChart.ticks(0, 2.55), [0, 0.5, 1, 1.5, 2, 2.5])
    }

    /// Radii of the circles a chart draws, in order, with their fill opacity and tooltip.
    private func circles(_ svg: String) -> [(radius: Double, opacity: Double, title: String)] {
        let pattern = try! NSRegularExpression(
            pattern: #"<circle [^>]*r="([0-9.]+)" [^>]*fill-opacity="([0-9.]+)"[^>]*><title>([^<]*)</title>"#)
        let text = svg as NSString
        return pattern.matches(in: svg, range: NSRange(location: 0, length: text.length)).map { m in
            (
                Double(text.substring(with: m.range(at: 1)))!, Double(text.substring(with: m.range(at: 2)))!,
                text.substring(with: m.range(at: 3))
            )
        }
    }

    /// A bin of 1 sample cannot look like one of 2,600: marker areas follow the counts, the
    /// smallest bins are faint, and each tooltip gives its count.
    func testReliabilityMarkersAreSizedByTheirCounts() throws {
        let counts = [0, 1, 4, 9, 100, 400, 2600]
        let bins = counts.enumerated().map { k, count in
            ConfidenceQuality.Bin(
                lower: Double(k) / 7, upper: Double(k + 1) / 7, count: count, meanConfidence: (Double(k) + 0.5) / 7,
                accuracy: 0.5)
        }
        let encoded = try JSONEncoder().encode(bins)
        let quality = try JSONDecoder().decode(
            ConfidenceQuality.self,
            from: Data(#"{"ece": 0.1, "auroc": 0.8, "bins": "#.utf8) + encoded + Data("}".utf8))
        let figure = RunReport.reliabilityFigure(exit: 0, quality: quality)
        let drawn = circles(figure.svg)
        XCTAssertEqual(drawn.count, 6, "one marker per bin with samples")
        let radii = drawn.map(\.radius)
        XCTAssertEqual(radii, radii.sorted(), "radius grows with the count")
        XCTAssertLessThan(radii[0] * radii[0] * 30, radii[5] * radii[5], "1 sample against 2,600")
        XCTAssertEqual(drawn.map(\.opacity).map { $0 < 0.5 }, [true, true, true, false, false, false])
        XCTAssertTrue(drawn[5].title.contains("2600 samples"), drawn[5].title)
        XCTAssertTrue(drawn[0].title.contains(": 1 sample,"), drawn[0].title)
        let csv = figure.csv.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false) }
        XCTAssertEqual(
            csv[0].map(String.init),
            ["bin_lower", "bin_upper", "count", "mean_confidence", "accuracy", "marker_radius"])
        XCTAssertEqual(csv.dropFirst().map { Int($0[2])! }, counts, "one row per bin, empty ones too")
        // The CSV holds the radii drawn (the SVG rounds to 0.1 px); above the smallest drawable
        // size, area is proportional to the count (100 : 400 : 2600).
        let exact = csv.dropFirst().map { Double($0[5])! }
        XCTAssertEqual(exact[0], 0, "an empty bin is not drawn")
        for (radius, drawn) in zip(exact.dropFirst(), radii) { XCTAssertEqual(radius, drawn, accuracy: 0.051) }
        XCTAssertEqual(exact[5] * exact[5] / (exact[4] * exact[4]), 4, accuracy: 1e-9)
        XCTAssertEqual(exact[6] * exact[6] / (exact[4] * exact[4]), 26, accuracy: 1e-9)
        XCTAssertEqual(exact[6], 9, "the largest bin gets the largest marker")
    }

    /// Indian Pines' class names whole (the issue saw "Stone-Steel-To"), slanted, inside a chart
    /// grown to hold them.
    func testCategoryNamesAreNotCut() {
        let names = [
            "Alfalfa", "Corn-notill", "Corn-mintill", "Corn", "Grass-pasture", "Grass-trees", "Grass-pasture-mowed",
            "Hay-windrowed", "Oats", "Soybean-notill", "Soybean-mintill", "Soybean-clean", "Wheat", "Woods",
            "Buildings-Grass-Trees-Drives", "Stone-Steel-Towers",
        ]
        var chart = SVGChart(id: "c", title: "Exit per class", xLabel: "", yLabel: "fraction")
        chart.width = 560
        let svg = chart.bars(
            categories: names, series: [("exit 1", names.map { _ in 0.5 }, "#000")], yRange: 0...1)
        let pattern = try! NSRegularExpression(
            pattern:
                #"<text class="category" transform="translate\(([0-9.]+) ([0-9.]+)\) rotate\(-45\)"[^>]*>([^<]*)</text>"#
        )
        let text = svg as NSString
        let labels = pattern.matches(in: svg, range: NSRange(location: 0, length: text.length)).map { m in
            (
                x: Double(text.substring(with: m.range(at: 1)))!, y: Double(text.substring(with: m.range(at: 2)))!,
                name: text.substring(with: m.range(at: 3))
            )
        }
        XCTAssertEqual(labels.map(\.name), names)
        let height = Double(svg.components(separatedBy: "height=\"")[1].prefix { $0.isNumber })!
        for label in labels {
            // A slanted label reaches w / sqrt(2) left and down from its anchor; at 10 px a
            // character is at most 6 px wide in a sans-serif font.
            let reach = Double(label.name.count) * 6 / 2.squareRoot()
            XCTAssertGreaterThanOrEqual(label.x - reach, 0, "\(label.name) starts inside the chart")
            XCTAssertLessThanOrEqual(label.y + reach, height - 20, "\(label.name) ends above the axis title")
        }
    }

    /// A run's page names every class whole in its per-class figure and CSV (it cut them at 14
    /// characters: "Stone-Steel-To").
    func testTheRunReportKeepsClassNamesWhole() throws {
        let directory = TemporaryDirectory("figures")
        let run = RunDirectory(path: directory.file("run"))
        try run.create()
        let names = ["Buildings-Grass-Trees-Drives", "Stone-Steel-Towers", "Corn, notill"]
        let statistics = RoutingStatistics(
            tau: 0.9, samples: 10, accuracy: 0.9, macroPrecision: 0.9, macroRecall: 0.9, macroF1: 0.9,
            weightedPrecision: nil, weightedRecall: nil, weightedF1: nil, exitFractions: [0.7, 0.3],
            perExitAccuracy: [0.8, 0.9], answeredAccuracy: [0.9, 0.8], relativeCost: 0.6, expectedFLOPs: 60,
            exitFLOPs: [50, 100], fullNetworkFLOPs: 100, averageExitDepth: 1.3, confusion: [])
        var evaluation = try XCTUnwrap(
            try JSONSerialization.jsonObject(with: try JSONEncoder().encode(statistics)) as? [String: Any])
        evaluation["class_names"] = names
        evaluation["per_class_exit_fractions"] = [[0.5, 0.5], [0.9, 0.1], [0.7, 0.3]]
        try AtomicFile.write(try JSONSerialization.data(withJSONObject: evaluation), to: run.evaluationFile)
        try AtomicFile.write(Data(), to: run.metricsFile)
        let figure = try XCTUnwrap(try RunReport(run: run).figures().first { $0.name == "per_class_routing" })
        for name in names {
            XCTAssertTrue(figure.svg.contains(">\(name)</text>"), name)
        }
        XCTAssertEqual(
            figure.csv,
            """
            class,name,exit,fraction
            0,Buildings-Grass-Trees-Drives,1,0.5
            0,Buildings-Grass-Trees-Drives,2,0.5
            1,Stone-Steel-Towers,1,0.9
            1,Stone-Steel-Towers,2,0.1
            2,"Corn, notill",1,0.7
            2,"Corn, notill",2,0.3

            """)
    }

    /// The band of several seeds' Pareto fronts, against values worked by hand: the accuracy each
    /// seed attains within a budget is that of its last Pareto point costing no more.
    func testBandSummarisesTheSeedsAttainableAccuracy() throws {
        let a = [(x: 1.0, y: 0.5), (x: 3.0, y: 0.7)]
        let b = [(x: 2.0, y: 0.6), (x: 4.0, y: 0.8)]
        let c = [(x: 1.5, y: 0.4), (x: 2.5, y: 0.9)]
        let band = try XCTUnwrap(ComparisonReport.band([a, b, c]))
        // From 2 (where every seed has a point) to 4, at every cost where a seed changes.
        XCTAssertEqual(band.map(\.x), [2, 2.5, 3, 4])
        let expected: [[Double]] = [[0.5, 0.6, 0.4], [0.5, 0.6, 0.9], [0.7, 0.6, 0.9], [0.7, 0.8, 0.9]]
        for (point, values) in zip(band, expected) {
            let mean = values.reduce(0, +) / 3
            let deviation = (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 2).squareRoot()
            XCTAssertEqual(point.mean, mean, accuracy: 1e-12)
            XCTAssertEqual(point.deviation, deviation, accuracy: 1e-12)
            XCTAssertEqual(point.low, values.min()!)
            XCTAssertEqual(point.high, values.max()!)
            XCTAssertTrue(point.low <= point.mean && point.mean <= point.high)
        }
        XCTAssertEqual(ComparisonReport.band([a])?.map(\.mean), [0.5, 0.7], "one seed: its own front")
        XCTAssertNil(ComparisonReport.band([]))
    }

    /// Fields with commas or quotes are quoted; numbers keep every digit.
    func testCSVReadsBack() {
        var table = CSVTable(["name", "value", "missing"])
        table.append([.text("Buildings, \"Grass\""), .number(0.1 + 0.2), .empty])
        table.append([.text("plain"), .integer(2600), .optional(nil)])
        XCTAssertEqual(
            table.text, "name,value,missing\n\"Buildings, \"\"Grass\"\"\",0.30000000000000004,\nplain,2600,\n")
    }
}
