import CGTFiles
import Foundation

/// One figure of a report: the drawing and the numbers behind it, written side by side as
/// `<name>.svg` and `<name>.csv` so that a script can redraw or check what the page shows.
public struct Figure {
    /// File name without extension, also the SVG's id.
    public var name: String
    public var caption: String
    public var svg: String
    /// A header row, then one row per point or bar drawn.
    public var csv: String

    public init(name: String, caption: String, svg: String, csv: String) {
        self.name = name
        self.caption = caption
        self.svg = svg
        self.csv = csv
    }

    /// Writes `<folder>/<name>.svg` and `<folder>/<name>.csv` for every figure, making the folder.
    public static func write(_ figures: [Figure], to folder: String) throws {
        try OutputFolder.create(folder)
        for figure in figures {
            try AtomicFile.write(Data(figure.svg.utf8), to: "\(folder)/\(figure.name).svg")
            try AtomicFile.write(Data(figure.csv.utf8), to: "\(folder)/\(figure.name).csv")
        }
    }
}

/// Comma-separated text as RFC 4180 reads it: a field holding a comma, a quote or a line
/// break is quoted, numbers are written with every digit `Double.description` gives.
public struct CSVTable {
    public var header: [String]
    public var rows: [[String]] = []

    public init(_ header: [String]) { self.header = header }

    public mutating func append(_ fields: [CSVField]) {
        precondition(fields.count == header.count, "CSV row of \(fields.count) fields under \(header.count) columns")
        rows.append(fields.map(\.text))
    }

    public var text: String {
        ([header] + rows).map { $0.map(Self.quoted).joined(separator: ",") }.joined(separator: "\n") + "\n"
    }

    static func quoted(_ field: String) -> String {
        field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
            ? "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : field
    }
}

/// A CSV cell: text, a number, or nothing.
public enum CSVField: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
    case text(String)
    case number(Double)
    case empty

    public init(stringLiteral value: String) { self = .text(value) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    public static func integer<T: BinaryInteger>(_ value: T) -> CSVField { .text(String(value)) }
    public static func optional(_ value: Double?) -> CSVField { value.map(CSVField.number) ?? .empty }

    var text: String {
        switch self {
        case .text(let s): return s
        case .number(let v): return v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v)
        case .empty: return ""
        }
    }
}

/// The HTML page around a report's figures, opened offline: every figure inline, a small
/// script that marks the page once every figure has been laid out (`data-figures-rendered`),
/// which the tests read in a headless browser.
enum ReportPage {
    static func html(title: String, heading: String, intro: [String], figures: [Figure], figureFolder: String?)
        -> String
    {
        var page = [
            "<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
            "<title>\(SVGChart.escape(title))</title>",
            "<style>body{font-family:sans-serif;max-width:1250px;margin:2em auto;padding:0 1em;color:#222}figure{display:inline-block;margin:0 1.5em 1.5em 0;vertical-align:top}figcaption{max-width:560px;font-size:0.9em;color:#444}table{border-collapse:collapse}td,th{padding:2px 12px 2px 0;text-align:left;vertical-align:top}th{border-bottom:1px solid #999}.note{color:#a50}code{font-size:0.95em}</style>",
            "</head><body>",
            "<h1>\(SVGChart.escape(heading))</h1>",
        ]
        page += intro
        for figure in figures {
            let data =
                figureFolder.map {
                    " <a href=\"\(SVGChart.escape("\($0)/\(figure.name).csv"))\">Data (CSV)</a>."
                } ?? ""
            page.append(
                "<figure>\n\(figure.svg)\n<figcaption>\(SVGChart.escape(figure.caption))\(data)</figcaption></figure>")
        }
        page.append(
            """
            <script>
            window.addEventListener('load', function () {
              var figures = document.querySelectorAll('svg.figure');
              var rendered = 0;
              figures.forEach(function (f) { var b = f.getBBox(); if (b.width > 0 && b.height > 0) rendered++; });
              document.body.setAttribute('data-figures', String(figures.length));
              document.body.setAttribute('data-figures-rendered', String(rendered));
            });
            </script>
            """)
        page.append("</body></html>")
        return page.joined(separator: "\n")
    }
}
