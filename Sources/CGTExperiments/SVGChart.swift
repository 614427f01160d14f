import Foundation

/// Small self-contained SVG charts (no scripts, no external files), for reports people open
/// in a browser offline.
public struct SVGChart {
    /// One line or set of points.
    public struct Series {
        public var name: String
        public var points: [(x: Double, y: Double)]
        public var color: String
        public var dashed = false
        public var markers = false
        public var line = true
        public var markerRadius = 3.0

        public init(
            name: String, points: [(x: Double, y: Double)], color: String, dashed: Bool = false, markers: Bool = false,
            line: Bool = true, markerRadius: Double = 3
        ) {
            self.markerRadius = markerRadius
            self.name = name
            self.points = points
            self.color = color
            self.dashed = dashed
            self.markers = markers
            self.line = line
        }
    }

    /// A colour per exit or series, distinguishable in print.
    public static let palette = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    ]

    public var id: String
    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var width = 560.0
    public var height = 340.0
    let margin = (left: 62.0, right: 150.0, top: 34.0, bottom: 62.0)

    public init(id: String, title: String, xLabel: String, yLabel: String) {
        self.id = id
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }

    static func number(_ v: Double) -> String { String(format: "%.1f", v) }

    /// Round tick values covering [low, high].
    static func ticks(_ low: Double, _ high: Double, count: Int = 5) -> [Double] {
        let span = max(high - low, 1e-12)
        let raw = span / Double(count)
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? raw
        var values: [Double] = []
        var v = (low / step).rounded(.up) * step
        while v <= high + step * 1e-9 {
            values.append(abs(v) < step * 1e-9 ? 0 : v)
            v += step
        }
        return values
    }

    static func label(_ v: Double) -> String {
        abs(v) >= 1000 ? String(format: "%.0f", v) : String(format: "%g", (v * 1e6).rounded() / 1e6)
    }

    /// The frame, axes, ticks and labels for data in `xRange` x `yRange`; returns the SVG and the mapping.
    func frame(xRange: ClosedRange<Double>, yRange: ClosedRange<Double>, xTicks: [Double]? = nil)
        -> (svg: [String], x: (Double) -> Double, y: (Double) -> Double)
    {
        let plotWidth = width - margin.left - margin.right
        let plotHeight = height - margin.top - margin.bottom
        let xSpan = max(xRange.upperBound - xRange.lowerBound, 1e-12)
        let ySpan = max(yRange.upperBound - yRange.lowerBound, 1e-12)
        let mapX = { (v: Double) in margin.left + (v - xRange.lowerBound) / xSpan * plotWidth }
        let mapY = { (v: Double) in margin.top + plotHeight - (v - yRange.lowerBound) / ySpan * plotHeight }
        var svg = [
            "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"\(id)\" class=\"figure\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"sans-serif\" font-size=\"11\">",
            "<title>\(Self.escape(title))</title>",
            "<rect x=\"0\" y=\"0\" width=\"\(Int(width))\" height=\"\(Int(height))\" fill=\"white\"/>",
            "<text x=\"\(Self.number(width / 2 - margin.right / 2 + margin.left / 2))\" y=\"18\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">\(Self.escape(title))</text>",
        ]
        for t in xTicks ?? Self.ticks(xRange.lowerBound, xRange.upperBound) {
            let x = mapX(t)
            svg.append(
                "<line x1=\"\(Self.number(x))\" y1=\"\(Self.number(margin.top))\" x2=\"\(Self.number(x))\" y2=\"\(Self.number(margin.top + plotHeight))\" stroke=\"#eee\"/>"
            )
            svg.append(
                "<text x=\"\(Self.number(x))\" y=\"\(Self.number(margin.top + plotHeight + 15))\" text-anchor=\"middle\">\(Self.label(t))</text>"
            )
        }
        for t in Self.ticks(yRange.lowerBound, yRange.upperBound) {
            let y = mapY(t)
            svg.append(
                "<line x1=\"\(Self.number(margin.left))\" y1=\"\(Self.number(y))\" x2=\"\(Self.number(margin.left + plotWidth))\" y2=\"\(Self.number(y))\" stroke=\"#eee\"/>"
            )
            svg.append(
                "<text x=\"\(Self.number(margin.left - 6))\" y=\"\(Self.number(y + 4))\" text-anchor=\"end\">\(Self.label(t))</text>"
            )
        }
        svg.append(
            "<rect x=\"\(Self.number(margin.left))\" y=\"\(Self.number(margin.top))\" width=\"\(Self.number(plotWidth))\" height=\"\(Self.number(plotHeight))\" fill=\"none\" stroke=\"#333\"/>"
        )
        svg.append(
            "<text x=\"\(Self.number(margin.left + plotWidth / 2))\" y=\"\(Self.number(height - 24))\" text-anchor=\"middle\">\(Self.escape(xLabel))</text>"
        )
        svg.append(
            "<text transform=\"translate(16 \(Self.number(margin.top + plotHeight / 2))) rotate(-90)\" text-anchor=\"middle\">\(Self.escape(yLabel))</text>"
        )
        return (svg, mapX, mapY)
    }

    func legend(_ entries: [(String, String)]) -> [String] {
        entries.enumerated().flatMap { k, entry -> [String] in
            let y = margin.top + 8 + Double(k) * 18
            let x = width - margin.right + 12
            return [
                "<rect x=\"\(Self.number(x))\" y=\"\(Self.number(y - 8))\" width=\"12\" height=\"10\" fill=\"\(entry.1)\"/>",
                "<text x=\"\(Self.number(x + 18))\" y=\"\(Self.number(y + 1))\">\(Self.escape(entry.0))</text>",
            ]
        }
    }

    /// Lines (and markers) of every series, axes fitted to the data or to the given ranges.
    public func lines(_ series: [Series], xRange: ClosedRange<Double>? = nil, yRange: ClosedRange<Double>? = nil)
        -> String
    {
        let all = series.flatMap(\.points)
        let xs = all.map(\.x)
        let ys = all.map(\.y)
        let xLow = xs.min() ?? 0
        let xHigh = max(xs.max() ?? 1, xLow + 1e-9)
        // Points (not lines over a whole axis) keep a margin from the frame.
        let xPad = series.contains { $0.markers && !$0.line } ? (xHigh - xLow) * 0.03 : 0
        let xr = xRange ?? ((xLow - xPad)...(xHigh + xPad))
        let yLow = ys.min() ?? 0
        let yHigh = ys.max() ?? 1
        let pad = (yHigh - yLow) * 0.05 + 1e-9
        let yr = yRange ?? ((yLow - pad)...(yHigh + pad))
        var (svg, mapX, mapY) = frame(xRange: xr, yRange: yr)
        for s in series {
            let path = s.points.map { "\(Self.number(mapX($0.x))),\(Self.number(mapY($0.y)))" }.joined(separator: " ")
            if s.line && s.points.count > 1 {
                svg.append(
                    "<polyline fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"1.8\"\(s.dashed ? " stroke-dasharray=\"5 3\"" : "") points=\"\(path)\"><title>\(Self.escape(s.name))</title></polyline>"
                )
            }
            if s.markers {
                for p in s.points {
                    svg.append(
                        "<circle cx=\"\(Self.number(mapX(p.x)))\" cy=\"\(Self.number(mapY(p.y)))\" r=\"\(Self.number(s.markerRadius))\" fill=\"\(s.color)\"><title>\(Self.escape(s.name)): \(Self.label(p.x)), \(Self.label(p.y))</title></circle>"
                    )
                }
            }
        }
        svg += legend(series.map { ($0.name, $0.color) })
        svg.append("</svg>")
        return svg.joined(separator: "\n")
    }

    /// Grouped bars: one group per category, one bar per series within it.
    public func bars(
        categories: [String], series: [(name: String, values: [Double], color: String)],
        yRange: ClosedRange<Double>? = nil
    ) -> String {
        let high = series.flatMap(\.values).max() ?? 1
        let yr = yRange ?? (0...max(high * 1.05, 1e-9))
        let n = Double(max(1, categories.count))
        var (svg, _, mapY) = frame(xRange: 0...n, yRange: yr, xTicks: [])
        let plotWidth = width - margin.left - margin.right
        let group = plotWidth / n
        let barWidth = group * 0.8 / Double(max(1, series.count))
        for (c, category) in categories.enumerated() {
            let x0 = margin.left + Double(c) * group + group * 0.1
            for (k, s) in series.enumerated() where c < s.values.count {
                let v = s.values[c]
                let top = mapY(v)
                let bottom = mapY(yr.lowerBound)
                svg.append(
                    "<rect x=\"\(Self.number(x0 + Double(k) * barWidth))\" y=\"\(Self.number(top))\" width=\"\(Self.number(barWidth * 0.92))\" height=\"\(Self.number(max(0, bottom - top)))\" fill=\"\(s.color)\"><title>\(Self.escape(s.name)), \(Self.escape(category)): \(Self.label(v))</title></rect>"
                )
            }
            let labelX = Self.number(x0 + group * 0.4)
            let labelY = Self.number(height - margin.bottom + 15)
            // Many categories: slanted labels, so that long names do not overlap.
            svg.append(
                categories.count > 8
                    ? "<text transform=\"translate(\(labelX) \(labelY)) rotate(-30)\" text-anchor=\"end\" font-size=\"9\">\(Self.escape(category))</text>"
                    : "<text x=\"\(labelX)\" y=\"\(labelY)\" text-anchor=\"middle\">\(Self.escape(category))</text>")
        }
        svg += legend(series.map { ($0.name, $0.color) })
        svg.append("</svg>")
        return svg.joined(separator: "\n")
    }
}
