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
        /// A radius per point (instead of `markerRadius`), e.g. area proportional to a count.
        public var radii: [Double]?
        /// A fill opacity per point (1 when nil).
        public var opacities: [Double]?
        /// A tooltip per point (instead of "name: x, y").
        public var tooltips: [String]?
        /// Line width and opacity; thin, light lines keep the markers they join readable.
        public var lineWidth = 1.8
        public var lineOpacity = 1.0
        /// Whether the legend names the series (raw points behind a summary need not).
        public var inLegend = true

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

    /// A filled region between a lower and an upper curve (mean ± standard deviation, say).
    public struct Band {
        public var name: String
        public var points: [(x: Double, low: Double, high: Double)]
        public var color: String

        public init(name: String, points: [(x: Double, low: Double, high: Double)], color: String) {
            self.name = name
            self.points = points
            self.color = color
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
    var margin = (left: 62.0, right: 150.0, top: 34.0, bottom: 62.0)
    /// Ticks drawn on each axis at the least (a span too short for round steps gets finer ones).
    public static let minimumTicks = 5

    public init(id: String, title: String, xLabel: String, yLabel: String) {
        self.id = id
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func number(_ v: Double) -> String { String(format: "%.1f", v) }

    /// Width in pixels of `text` at `fontSize` in a sans-serif font, estimated generously (0.6 em
    /// per character), so that labels laid out by it do not overlap or leave the chart.
    static func textWidth(_ text: String, fontSize: Double = 11) -> Double {
        Double(text.count) * fontSize * 0.6
    }

    /// Round tick values inside [low, high], at least `minimum` of them: the largest step of
    /// 1, 2, 2.5 or 5 times a power of ten that gives that many (so at most about 2.5 x `minimum` + 1).
    static func ticks(_ low: Double, _ high: Double, minimum: Int = minimumTicks) -> [Double] {
        guard low.isFinite, high.isFinite, high > low else { return low.isFinite ? [low] : [] }
        let span = high - low
        var magnitude = pow(10, ceil(log10(span)))
        for _ in 0..<40 {
            for mantissa in [5.0, 2.5, 2, 1] {
                let step = mantissa * magnitude
                let first = (low / step - 1e-9).rounded(.up)
                let last = (high / step + 1e-9).rounded(.down)
                if last - first + 1 >= Double(minimum) {
                    return stride(from: first, through: last, by: 1).map { k in
                        let v = k * step
                        return abs(v) < step * 1e-9 ? 0 : v
                    }
                }
            }
            magnitude /= 10
        }
        return [low, high]
    }

    static func label(_ v: Double) -> String {
        abs(v) >= 1000 ? String(format: "%.0f", v) : String(format: "%g", (v * 1e6).rounded() / 1e6)
    }

    /// Marker radii whose areas are proportional to `counts` (the largest gets `largest`); a
    /// non-empty bin keeps at least `smallest` so it can be seen and hovered, an empty one gets 0.
    public static func areaProportionalRadii(_ counts: [Int], largest: Double = 9, smallest: Double = 1.5)
        -> [Double]
    {
        let top = Double(counts.max() ?? 0)
        guard top > 0 else { return counts.map { _ in 0 } }
        return counts.map { c in c > 0 ? max(smallest, largest * (Double(c) / top).squareRoot()) : 0 }
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
            "<text x=\"\(Self.number(margin.left + plotWidth / 2))\" y=\"18\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">\(Self.escape(title))</text>",
        ]
        let xValues = xTicks ?? Self.ticks(xRange.lowerBound, xRange.upperBound)
        // Labels that would touch their neighbours are drawn on every other tick; the grid stays.
        let widest = xValues.map { Self.textWidth(Self.label($0)) }.max() ?? 0
        let spacing = xValues.count > 1 ? plotWidth * (xValues[1] - xValues[0]) / xSpan : plotWidth
        let labelEvery = widest + 8 > spacing ? 2 : 1
        for (k, t) in xValues.enumerated() {
            let x = mapX(t)
            svg.append(
                "<line x1=\"\(Self.number(x))\" y1=\"\(Self.number(margin.top))\" x2=\"\(Self.number(x))\" y2=\"\(Self.number(margin.top + plotHeight))\" stroke=\"#e4e4e4\"/>"
            )
            svg.append(
                "<line x1=\"\(Self.number(x))\" y1=\"\(Self.number(margin.top + plotHeight))\" x2=\"\(Self.number(x))\" y2=\"\(Self.number(margin.top + plotHeight + 4))\" stroke=\"#333\"/>"
            )
            if k % labelEvery == 0 {
                svg.append(
                    "<text class=\"tick x\" x=\"\(Self.number(x))\" y=\"\(Self.number(margin.top + plotHeight + 16))\" text-anchor=\"middle\">\(Self.label(t))</text>"
                )
            }
        }
        for t in Self.ticks(yRange.lowerBound, yRange.upperBound) {
            let y = mapY(t)
            svg.append(
                "<line x1=\"\(Self.number(margin.left))\" y1=\"\(Self.number(y))\" x2=\"\(Self.number(margin.left + plotWidth))\" y2=\"\(Self.number(y))\" stroke=\"#e4e4e4\"/>"
            )
            svg.append(
                "<line x1=\"\(Self.number(margin.left - 4))\" y1=\"\(Self.number(y))\" x2=\"\(Self.number(margin.left))\" y2=\"\(Self.number(y))\" stroke=\"#333\"/>"
            )
            svg.append(
                "<text class=\"tick y\" x=\"\(Self.number(margin.left - 7))\" y=\"\(Self.number(y + 4))\" text-anchor=\"end\">\(Self.label(t))</text>"
            )
        }
        svg.append(
            "<rect x=\"\(Self.number(margin.left))\" y=\"\(Self.number(margin.top))\" width=\"\(Self.number(plotWidth))\" height=\"\(Self.number(plotHeight))\" fill=\"none\" stroke=\"#333\"/>"
        )
        svg.append(
            "<text x=\"\(Self.number(margin.left + plotWidth / 2))\" y=\"\(Self.number(height - 16))\" text-anchor=\"middle\">\(Self.escape(xLabel))</text>"
        )
        svg.append(
            "<text transform=\"translate(16 \(Self.number(margin.top + plotHeight / 2))) rotate(-90)\" text-anchor=\"middle\">\(Self.escape(yLabel))</text>"
        )
        return (svg, mapX, mapY)
    }

    /// This chart widened on the left so that the widest tick label of `yRange` and the axis
    /// title beside it fit.
    func fittingTickLabels(_ yRange: ClosedRange<Double>) -> SVGChart {
        var chart = self
        let widest = Self.ticks(yRange.lowerBound, yRange.upperBound).map { Self.textWidth(Self.label($0)) }.max() ?? 0
        let needed = widest + 34
        if needed > margin.left {
            chart.width += needed - margin.left
            chart.margin.left = needed
        }
        return chart
    }

    /// This chart widened on the right so that the longest legend entry fits beside the plot.
    func fittingLegend(_ names: [String]) -> SVGChart {
        var chart = self
        let needed = 34 + (names.map { Self.textWidth($0) }.max() ?? 0)
        if needed > margin.right {
            chart.width += needed - margin.right
            chart.margin.right = needed
        }
        return chart
    }

    func legend(_ entries: [(name: String, color: String, opacity: Double)]) -> [String] {
        entries.enumerated().flatMap { k, entry -> [String] in
            let y = margin.top + 8 + Double(k) * 18
            let x = width - margin.right + 12
            return [
                "<rect x=\"\(Self.number(x))\" y=\"\(Self.number(y - 8))\" width=\"12\" height=\"10\" fill=\"\(entry.color)\" fill-opacity=\"\(entry.opacity)\"/>",
                "<text x=\"\(Self.number(x + 18))\" y=\"\(Self.number(y + 1))\">\(Self.escape(entry.name))</text>",
            ]
        }
    }

    /// A range around `low...high` with `fraction` of its span (or of the value, for one value) on each side.
    static func padded(_ low: Double, _ high: Double, fraction: Double) -> ClosedRange<Double> {
        let span = high - low
        let pad = span > 1e-12 ? span * fraction : max(abs(high) * 0.1, 0.5)
        return (low - pad)...(high + pad)
    }

    /// Lines (and markers) of every series and the filled bands, axes fitted to the data or to
    /// the given ranges.
    public func lines(
        _ series: [Series], bands: [Band] = [], xRange: ClosedRange<Double>? = nil,
        yRange: ClosedRange<Double>? = nil
    ) -> String {
        let all = series.flatMap(\.points)
        let xs = all.map(\.x) + bands.flatMap { $0.points.map(\.x) }
        let ys = all.map(\.y) + bands.flatMap { $0.points.flatMap { [$0.low, $0.high] } }
        let xLow = xs.min() ?? 0
        let xHigh = xs.max() ?? 1
        // Points (not lines over a whole axis) keep a margin from the frame.
        let xFraction = series.contains { $0.markers && !$0.line } || xHigh - xLow < 1e-12 ? 0.03 : 0
        let xr = xRange ?? (xFraction > 0 ? Self.padded(xLow, xHigh, fraction: xFraction) : xLow...xHigh)
        let yr = yRange ?? Self.padded(ys.min() ?? 0, ys.max() ?? 1, fraction: 0.05)
        let named = series.filter(\.inLegend)
        let chart = fittingLegend(named.map(\.name) + bands.map(\.name)).fittingTickLabels(yr)
        var (svg, mapX, mapY) = chart.frame(xRange: xr, yRange: yr)
        for band in bands where band.points.count > 1 {
            let upper = band.points.map { "\(Self.number(mapX($0.x))),\(Self.number(mapY($0.high)))" }
            let lower = band.points.reversed().map { "\(Self.number(mapX($0.x))),\(Self.number(mapY($0.low)))" }
            svg.append(
                "<polygon fill=\"\(band.color)\" fill-opacity=\"0.2\" stroke=\"none\" points=\"\((upper + lower).joined(separator: " "))\"><title>\(Self.escape(band.name))</title></polygon>"
            )
        }
        for s in series {
            let path = s.points.map { "\(Self.number(mapX($0.x))),\(Self.number(mapY($0.y)))" }.joined(separator: " ")
            if s.line && s.points.count > 1 {
                svg.append(
                    "<polyline fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"\(s.lineWidth)\" stroke-opacity=\"\(s.lineOpacity)\"\(s.dashed ? " stroke-dasharray=\"5 3\"" : "") points=\"\(path)\"><title>\(Self.escape(s.name))</title></polyline>"
                )
            }
            if s.markers {
                for (i, p) in s.points.enumerated() {
                    let radius = s.radii.map { i < $0.count ? $0[i] : s.markerRadius } ?? s.markerRadius
                    let opacity = s.opacities.map { i < $0.count ? $0[i] : 1 } ?? 1
                    let tip =
                        s.tooltips.map { i < $0.count ? $0[i] : "" }
                        ?? "\(s.name): \(Self.label(p.x)), \(Self.label(p.y))"
                    let outline = opacity < 1 ? " stroke=\"\(s.color)\" stroke-width=\"1\"" : ""
                    svg.append(
                        "<circle cx=\"\(Self.number(mapX(p.x)))\" cy=\"\(Self.number(mapY(p.y)))\" r=\"\(Self.number(radius))\" fill=\"\(s.color)\" fill-opacity=\"\(opacity)\"\(outline)><title>\(Self.escape(tip))</title></circle>"
                    )
                }
            }
        }
        svg += chart.legend(named.map { ($0.name, $0.color, 1.0) } + bands.map { ($0.name, $0.color, 0.2) })
        svg.append("</svg>")
        return svg.joined(separator: "\n")
    }

    /// Grouped bars: one group per category, one bar per series within it. Category names are
    /// written whole: slanted, with the chart grown to hold them, when they do not fit level.
    public func bars(
        categories: [String], series: [(name: String, values: [Double], color: String)],
        yRange: ClosedRange<Double>? = nil
    ) -> String {
        let high = series.flatMap(\.values).max() ?? 1
        let yr = yRange ?? (0...max(high * 1.05, 1e-9))
        let n = Double(max(1, categories.count))
        var chart = fittingLegend(series.map(\.name)).fittingTickLabels(yr)
        let group = (chart.width - chart.margin.left - chart.margin.right) / n
        let fontSize = 10.0
        let widths = categories.map { Self.textWidth($0, fontSize: fontSize) }
        let slanted = widths.contains { $0 > group * 0.95 }
        if slanted {
            // At -45 degrees a label of width w reaches w / sqrt(2) down and to the left of its bar.
            let reach = widths.map { $0 * 0.7072 }
            let down = (reach.max() ?? 0) + 44
            if down > chart.margin.bottom {
                chart.height += down - chart.margin.bottom
                chart.margin.bottom = down
            }
            var left = 0.0
            for (c, r) in reach.enumerated() { left = max(left, r - (Double(c) + 0.5) * group + 8) }
            if left > chart.margin.left {
                chart.width += left - chart.margin.left
                chart.margin.left = left
            }
        }
        var (svg, _, mapY) = chart.frame(xRange: 0...n, yRange: yr, xTicks: [])
        let barWidth = group * 0.8 / Double(max(1, series.count))
        for (c, category) in categories.enumerated() {
            let x0 = chart.margin.left + Double(c) * group + group * 0.1
            for (k, s) in series.enumerated() where c < s.values.count {
                let v = s.values[c]
                let top = mapY(v)
                let bottom = mapY(yr.lowerBound)
                svg.append(
                    "<rect x=\"\(Self.number(x0 + Double(k) * barWidth))\" y=\"\(Self.number(top))\" width=\"\(Self.number(barWidth * 0.92))\" height=\"\(Self.number(max(0, bottom - top)))\" fill=\"\(s.color)\"><title>\(Self.escape(s.name)), \(Self.escape(category)): \(Self.label(v))</title></rect>"
                )
            }
            let labelX = Self.number(x0 + group * 0.4)
            let labelY = Self.number(chart.height - chart.margin.bottom + 14)
            svg.append(
                slanted
                    ? "<text class=\"category\" transform=\"translate(\(labelX) \(labelY)) rotate(-45)\" text-anchor=\"end\" font-size=\"\(Int(fontSize))\">\(Self.escape(category))</text>"
                    : "<text class=\"category\" x=\"\(labelX)\" y=\"\(labelY)\" text-anchor=\"middle\">\(Self.escape(category))</text>"
            )
        }
        svg += chart.legend(series.map { ($0.name, $0.color, 1.0) })
        svg.append("</svg>")
        return svg.joined(separator: "\n")
    }
}
