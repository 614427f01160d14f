import CGTTestSupport
import Foundation
import XCTest

@testable import CGTData

/// `cgt prepare csv` reading the file a block at a time (records cut anywhere by the end of a
/// block) and its features back from a temporary file writes the file that reading it whole writes.
final class CSVStreamingTests: XCTestCase {
    let directory = TemporaryDirectory("csv-stream")
    let createdAt = Date(timeIntervalSince1970: 1_800_000_000)

    /// A table with a quoted id column (commas, doubled quotes and line breaks inside), three
    /// feature columns, text labels, CRLF or LF records, blank lines and a byte-order mark.
    func table(rows: Int, salt: Int, labels: [String], crlf: Bool) -> String {
        let end = crlf ? "\r\n" : "\n"
        var text = "\u{FEFF}id,a,label, b ,c" + end
        for row in 0..<rows {
            let mixed = (row &* 2_654_435_761 &+ salt) % 1_000_003
            let id = row % 5 == 0 ? "\"row \(row), \"\"quoted\"\"\nsecond line\"" : "r\(row)"
            let a = Double(mixed % 2_000) / 8 - 100
            let b = mixed % 7 == 0 ? "1e3" : " \(Double(mixed % 333) * 0.01) "
            let c = Float(mixed % 9_999) / 3
            text += "\(id),\(a),\(labels[mixed % labels.count]),\(b),\(c)" + end
            if row % 97 == 0 { text += end }
        }
        return text
    }

    func bothWays(
        _ tag: String, labels: [String], test: Bool, normalization: Normalization.Method, storage: FeatureStorage,
        validation: SplitFraction, crlf: Bool
    ) throws -> (memory: String, streamed: String) {
        let file = directory.file("\(tag).csv")
        try table(rows: 900, salt: 1, labels: labels, crlf: crlf).write(toFile: file, atomically: true, encoding: .utf8)
        var testFile: String?
        if test {
            testFile = directory.file("\(tag)-test.csv")
            try table(rows: 250, salt: 9, labels: labels, crlf: crlf).write(
                toFile: testFile!, atomically: true, encoding: .utf8)
        }
        let plan = SplitPlan(
            testFraction: test ? .zero : SplitFraction(0.3)!, validationFraction: validation, seed: 4)
        let memory = directory.file("\(tag)-memory.h5")
        let streamed = directory.file("\(tag)-streamed.h5")
        try DatasetWriter.write(
            CSVPreparation.prepare(
                file: file, testFile: testFile, labelColumn: "label", dropColumns: ["id"], delimiter: UInt8(ascii: ","),
                normalization: .fit(normalization), plan: plan, commandLine: "cgt prepare csv", toolVersion: "test",
                storage: storage, createdAt: createdAt), to: memory)
        // Blocks of a few rows of features, and 37 bytes of text at a time.
        let content = try CSVPreparation.content(
            file: file, testFile: testFile, labelColumn: "label", dropColumns: ["id"], delimiter: UInt8(ascii: ","),
            normalization: .fit(normalization), plan: plan, commandLine: "cgt prepare csv", toolVersion: "test",
            storage: storage, createdAt: createdAt, blockBytes: 37)
        XCTAssertEqual(content.writeBlockBytes, 37, "\(tag): the table was streamed, not read whole")
        try DatasetWriter.write(content, to: streamed)
        return (memory, streamed)
    }

    func testStreamedFilesEqualTheFilesPreparedInMemory() throws {
        let words = ["cat", "dog", "émeu", "ant"]
        for (tag, labels, test, normalization, validation, crlf) in [
            ("words-zscore", words, false, Normalization.Method.zscore, SplitFraction(0.2)!, false),
            ("numbers-minmax-crlf", ["10", "2", "33"], false, .minmax, .zero, true),
            ("own-test-none", words, true, .none, SplitFraction(0.1)!, false),
        ] {
            let files = try bothWays(
                tag, labels: labels, test: test, normalization: normalization, storage: .float32,
                validation: validation, crlf: crlf)
            try assertSameDatasetFile(files.memory, files.streamed, tag)
        }
    }

    func testStreamingRefusesWhatReadingWholeRefuses() throws {
        let good = table(rows: 300, salt: 1, labels: ["x", "y"], crlf: false)
        for (tag, text, testText) in [
            ("not-a-number", good.replacingOccurrences(of: "r151,", with: "r151,abc"), nil),
            ("unclosed-quote", good + "\"open,1,x,2,3\n", nil),
            ("one-label", table(rows: 50, salt: 1, labels: ["x"], crlf: false), nil),
            ("unknown-test-label", good, table(rows: 40, salt: 3, labels: ["x", "z"], crlf: false)),
            ("fields", good.replacingOccurrences(of: "r77,", with: "r77,1,"), nil),
        ] as [(String, String, String?)] {
            let file = directory.file("\(tag).csv")
            try text.write(toFile: file, atomically: true, encoding: .utf8)
            var testFile: String?
            if let testText {
                testFile = directory.file("\(tag)-test.csv")
                try testText.write(toFile: testFile!, atomically: true, encoding: .utf8)
            }
            let plan = SplitPlan(testFraction: testFile == nil ? SplitFraction(0.3)! : .zero, seed: 4)
            var errors: [String] = []
            for streamed in [false, true] {
                do {
                    if streamed {
                        _ = try CSVPreparation.content(
                            file: file, testFile: testFile, labelColumn: "label", dropColumns: ["id"],
                            delimiter: UInt8(ascii: ","), normalization: .fit(.none), plan: plan, commandLine: "",
                            toolVersion: "", storage: .float32, createdAt: createdAt, blockBytes: 29)
                    } else {
                        _ = try CSVPreparation.prepare(
                            file: file, testFile: testFile, labelColumn: "label", dropColumns: ["id"],
                            delimiter: UInt8(ascii: ","), normalization: .fit(.none), plan: plan, commandLine: "",
                            toolVersion: "", createdAt: createdAt)
                    }
                    XCTFail("\(tag): not refused")
                } catch {
                    errors.append(String(describing: error))
                }
            }
            XCTAssertEqual(errors.first, errors.last, tag)
        }
    }
}
