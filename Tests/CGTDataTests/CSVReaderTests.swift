import CGTData
import CGTTestSupport
import XCTest

/// CSV tables: quoting, line endings, label mapping, and the errors a hand-edited file produces.
final class CSVReaderTests: XCTestCase {
    let path = "/data/table.csv"

    func table(_ text: String, label: String = "class", drop: Set<String> = [], delimiter: Character = ",") throws
        -> CSVReader.Table
    {
        try CSVReader.read(
            SourceFile(path: path, bytes: Array(text.utf8)), labelColumn: label, dropColumns: drop,
            delimiter: delimiter.asciiValue!)
    }

    func testReadsQuotedFieldsCRLFAndABOM() throws {
        let text = "\u{FEFF}id,\"a\",b,class\r\n1, 0.5 ,\"-2\",\"setosa, wild\"\r\n\r\n2,1e3,3,\"say \"\"hi\"\"\"\r\n"
        let result = try table(text, drop: ["id"])
        XCTAssertEqual(result.featureColumns, ["a", "b"])
        XCTAssertEqual(result.features, [0.5, -2, 1000, 3])
        XCTAssertEqual(result.labels, ["setosa, wild", "say \"hi\""])
        XCTAssertEqual(result.lines, [2, 4])
        let tabs = try table("x\tclass\n1\tb\n", delimiter: "\t")
        XCTAssertEqual(tabs.features, [1])
    }

    func testLabelsBecomeClassesInADocumentedOrder() {
        let text = ClassMapping.fromText(["versicolor", "setosa", "virginica", "setosa"])
        XCTAssertEqual(text.mapping.names, ["setosa", "versicolor", "virginica"])
        XCTAssertEqual(text.classes, [1, 0, 2, 0])
        let numeric = ClassMapping.fromText(["10", "2", "-1", "2"])
        XCTAssertEqual(numeric.mapping.names, ["-1", "2", "10"], "integers sort as numbers, not text")
        XCTAssertEqual(numeric.classes, [2, 1, 0, 1])
    }

    func testErrorsNameTheLineAndColumn() {
        let cases: [(String, [String])] = [
            ("a,class\n1,x\nfoo,y\n", ["line 3, column 'a'", "'foo' is not a number"]),
            ("a,class\n1,x\n,y\n", ["line 3, column 'a'", "an empty field is not a number"]),
            ("a,class\n1,x\nnan,y\n", ["line 3, column 'a'", "not finite"]),
            ("a,class\n1,x\n1e39,y\n", ["line 3", "not finite in float32"]),
            ("a,class\n1,x\n2\n", ["line 3", "has 1 fields, the header has 2"]),
            ("a,b\n1,2\n", ["has no column 'class'", "'a', 'b'"]),
            ("a,a,class\n1,2,x\n", ["'a' appears twice"]),
            ("a,class\n1,\n", ["line 2", "the label is empty"]),
            ("a,class\n", ["no data rows"]),
            ("", ["is empty"]),
            ("a,class\n\"1,x\n", ["line 2", "not closed"]),
            ("class\nx\n", ["no feature columns"]),
        ]
        for (text, words) in cases {
            assertDatasetError(file: path, mentions: words) { try table(text) }
        }
        assertDatasetError(file: path, mentions: ["no column 'ident' to drop"]) {
            try table("a,class\n1,x\n", drop: ["ident"])
        }
    }
}
