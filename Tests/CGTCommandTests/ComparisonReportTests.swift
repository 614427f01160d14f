import CGTTestSupport
import Foundation
import XCTest

/// `cgt report RUN RUN...` and `cgt table` as a user comparing runs meets them: runs grouped by
/// job and data, a page whose figures carry the numbers they draw, refusals in one line.
final class ComparisonReportTests: XCTestCase {
    let directory = TemporaryDirectory("compare")

    let job = """
        name: %@
        model: {hidden: [16, 16], exits: [1, 2]}
        method: {name: %@}
        training: {epochs: 3, batch_size: 16}
        eval: {every_epochs: 1}

        """

    /// Trains `job` on `data` with `seed` into `folder` (a few hundred milliseconds).
    private func train(_ name: String, method: String, data: String, seed: Int, folder: String) throws -> String {
        let file = try directory.write(String(format: job, name, method), to: "\(name).yaml")
        let run = directory.file(folder)
        let result = try CommandRunner.cgt([
            "train", file, "--data", data, "--seed", "\(seed)", "--out", run, "--quiet",
        ])
        XCTAssertEqual(result.status, 0, result.stderr)
        return run
    }

    /// Rows of a CSV file as dictionaries by column name (no field of these files is quoted).
    private func csv(_ path: String) throws -> [[String: String]] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let lines = text.split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false) }
        let header = try XCTUnwrap(lines.first).map(String.init)
        return lines.dropFirst().map { fields in
            XCTAssertEqual(fields.count, header.count, "\(path): \(fields)")
            return Dictionary(uniqueKeysWithValues: zip(header, fields.map(String.init)))
        }
    }

    private func json(_ path: String) throws -> [String: Any] {
        try XCTUnwrap(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
    }

    private func assertOneLineError(
        _ result: CommandResult, _ parts: [String], file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertEqual(result.status, 1, result.stderr, file: file, line: line)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr, file: file, line: line)
        XCTAssertTrue(result.stderr.hasPrefix("cgt: error: "), result.stderr, file: file, line: line)
        for part in parts {
            XCTAssertTrue(result.stderr.contains(part), "'\(part)' in \(result.stderr)", file: file, line: line)
        }
    }

    func testRunsSideBySide() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 8, classes: 3, train: 192, test: 96, spread: 1.5)
        let other = try Fixtures.writeDataset(
            in: directory, name: "other.h5", features: 8, classes: 3, train: 192, test: 96, seed: 7, spread: 1.5)
        let soft = try (0..<3).map {
            try train("cmp_softcgt", method: "softcgt", data: data, seed: $0, folder: "soft/seed\($0)")
        }
        let hard = try train("cmp_hardcgt", method: "hardcgt", data: data, seed: 0, folder: "hard/seed0")
        let elsewhere = try train("cmp_softcgt", method: "softcgt", data: other, seed: 0, folder: "other/seed0")
        let runs = soft + [hard, elsewhere]

        // A run whose eval.json predates its data keys is grouped by the hash its checkpoint holds.
        let evaluationFile = "\(elsewhere)/eval.json"
        var evaluation = try json(evaluationFile)
        evaluation["data_sha256"] = nil
        evaluation["data"] = nil
        try JSONSerialization.data(withJSONObject: evaluation).write(to: URL(fileURLWithPath: evaluationFile))
        let sum = try CommandRunner.run("/usr/bin/sha256sum", [other])
        let otherHash = String(sum.stdout.prefix(8))

        // cgt table: the job on other data is its own row, named with its data.
        let table = try CommandRunner.cgt(["table"] + runs)
        XCTAssertEqual(table.status, 0, table.stderr)
        let rows = table.stdout.split(separator: "\n").filter { $0.hasPrefix("| cmp_") || $0.hasPrefix("| hardcgt") }
        XCTAssertEqual(rows.count, 3, table.stdout)
        XCTAssertTrue(rows[0].hasPrefix("| cmp_softcgt on data.h5 ("), table.stdout)
        XCTAssertTrue(rows[0].contains("| 0, 1, 2 | data.h5 ("), table.stdout)
        XCTAssertTrue(rows[2].hasPrefix("| cmp_softcgt on other.h5 (\(otherHash)) |"), table.stdout)
        XCTAssertFalse(table.stdout.contains("unknown"), table.stdout)

        // A copied run folder is a second seed 0: refused in one line naming both.
        let copy = directory.file("copy")
        try FileManager.default.copyItem(atPath: soft[0], toPath: copy)
        for command in [["table"], ["report", "--no-eval", "--out", directory.file("refused")]] {
            assertOneLineError(
                try CommandRunner.cgt(command + [soft[0], copy]),
                ["\(soft[0]) and \(copy) are both seed 0 of cmp_softcgt on data.h5"])
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory.file("refused")), "nothing written")
        assertOneLineError(
            try CommandRunner.cgt(["report", soft[0], soft[1], "--out", soft[1]]),
            ["--out \(soft[1]) is one of the runs"])

        let out = directory.file("compare")
        let started = Date()
        let result = try CommandRunner.cgt(["report"] + runs + ["--out", out])
        XCTAssertEqual(result.status, 0, result.stderr)
        print("cgt report of \(runs.count) runs (with their sweeps): \(Date().timeIntervalSince(started)) s")
        let figures = ["accuracy_vs_flops", "held_out_accuracy", "exit_distribution"]
        for name in ["report.html", "summary.csv"] + figures.flatMap({ ["figures/\($0).svg", "figures/\($0).csv"] }) {
            XCTAssertTrue(FileManager.default.fileExists(atPath: "\(out)/\(name)"), name)
        }

        // The figure's sweep rows are each run's sweep, point for point.
        let points = try csv("\(out)/figures/accuracy_vs_flops.csv")
        for run in runs {
            let evaluation = try json("\(run)/eval/eval.json")
            let sweep = try XCTUnwrap((evaluation["sweep"] as? [String: Any])?["points"] as? [[String: Any]])
            let full = try XCTUnwrap(evaluation["full_network_flops"] as? Double)
            let rows = points.filter { $0["series"] == "sweep" && $0["run"] == run }
            XCTAssertEqual(rows.count, sweep.count, run)
            for (row, point) in zip(rows, sweep) {
                // Foundation's JSON reader may round the last digit otherwise than the decoder cgt uses.
                func same(_ field: String, _ value: Any?, scale: Double = 1, line: UInt = #line) throws {
                    let expected = try XCTUnwrap(value as? Double, line: line) * scale
                    XCTAssertEqual(Double(row[field]!)!, expected, accuracy: abs(expected) * 1e-14, field, line: line)
                }
                try same("threshold", point["threshold"])
                try same("accuracy", point["accuracy"])
                try same("relative_cost", point["relative_cost"])
                try same("expected_flops", point["relative_cost"], scale: full)
                XCTAssertEqual(row["pareto_optimal"], (point["pareto_optimal"] as? Bool) == true ? "1" : "0")
            }
        }
        // The mean of the three seeds lies between their least and greatest attainable accuracy,
        // recomputed here from their Pareto points.
        let softLabel = try XCTUnwrap(points.first { $0["run"] == soft[0] }?["group"])
        let means = points.filter { $0["series"] == "mean" && $0["group"] == softLabel }
        XCTAssertFalse(means.isEmpty)
        let fronts = soft.map { run in
            points.filter { $0["run"] == run && $0["pareto_optimal"] == "1" }.map {
                (cost: Double($0["expected_flops"]!)!, accuracy: Double($0["accuracy"]!)!)
            }.sorted { $0.cost < $1.cost }
        }
        for mean in means {
            let cost = Double(mean["expected_flops"]!)!
            let values = try fronts.map { front in try XCTUnwrap(front.last { $0.cost <= cost * (1 + 1e-9) }).accuracy }
            let value = Double(mean["accuracy"]!)!
            XCTAssertEqual(value, values.reduce(0, +) / 3, accuracy: 1e-12)
            XCTAssertEqual(Double(mean["accuracy_min"]!)!, values.min()!)
            XCTAssertEqual(Double(mean["accuracy_max"]!)!, values.max()!)
            XCTAssertTrue(values.min()! <= value && value <= values.max()!)
            XCTAssertEqual(mean["seeds"], "3")
        }
        let summary = try csv("\(out)/summary.csv")
        XCTAssertEqual(summary.map { $0["seeds"] }, ["0 1 2", "0", "0"])
        XCTAssertEqual(summary.map { $0["job"] }, ["cmp_softcgt", "cmp_hardcgt", "cmp_softcgt"])
        XCTAssertNotEqual(summary[0]["data_sha256"], summary[2]["data_sha256"])
        let accuracies = try soft.map { try XCTUnwrap(try json("\($0)/eval.json")["accuracy"] as? Double) }
        XCTAssertEqual(Double(summary[0]["accuracy"]!)!, accuracies.reduce(0, +) / 3, accuracy: 1e-12)

        // One run: its own page, a CSV beside every figure.
        let single = try CommandRunner.cgt(["report", hard])
        XCTAssertEqual(single.status, 0, single.stderr)
        let drawn = try FileManager.default.contentsOfDirectory(atPath: "\(hard)/figures")
        let svgs = drawn.filter { $0.hasSuffix(".svg") }
        XCTAssertGreaterThanOrEqual(svgs.count, 7, "\(drawn)")
        for svg in svgs {
            let rows = try csv("\(hard)/figures/\(svg.dropLast(4)).csv")
            XCTAssertFalse(rows.isEmpty, svg)
        }

        // The page in a real browser: every figure laid out.
        guard
            let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first(where: {
                FileManager.default.isExecutableFile(atPath: $0)
            })
        else {
            return XCTFail("chromium is not installed (launch/setup installs it)")
        }
        let browser = try CommandRunner.run(
            chromium,
            [
                "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=\(directory.file("chromium"))",
                "--dump-dom", "file://\(out)/report.html",
            ])
        XCTAssertEqual(browser.status, 0, browser.stderr)
        XCTAssertTrue(browser.stdout.contains("data-figures-rendered=\"3\""), String(browser.stdout.suffix(400)))
    }
}
