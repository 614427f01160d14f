import CGTCheckpoint
import CGTEvaluation
import CGTJob
import CGTKernels
import CGTRandom
import Foundation
import Yams

/// How a grid picks its trials (`method:` of a grid file).
public enum GridSearch: String, Sendable, CustomStringConvertible {
    /// Every combination of the parameters' values, the last parameter varying fastest.
    case grid
    /// `count` seeded random draws from the parameters' domains.
    case random
    /// The combinations (or, with `count`, random draws) stopped early by asynchronous
    /// successive halving (`asha:` section; `SuccessiveHalving`).
    case asha

    public var description: String { rawValue }
}

/// A hyperparameter search: a base job and the keys to vary, in the shape sweep tools use
/// (a base config plus `parameters: {key: {values: [...]}}`). See README.md, "Grids".
///
/// ```yaml
/// base: ../indian_pines/branchynet.yaml   # relative to the grid file
/// method: grid                            # every combination; or random (count, seed)
/// metric: macro_f1                        # what the summary sorts by
/// parameters:
///   method.weights[1]: {values: [0.8, 0.6, 0.4]}
///   method.weights[2]: {values: [0.6, 0.4, 0.2]}
///   optimizer.lr: {log: {start: 0.0003, stop: 0.003, count: 3}}
/// constraints:
///   - "1.0 > method.weights[1] > method.weights[2]"
/// asha: {rungs: [10, 30], eta: 3}         # with method: asha, stop trials below the top 1/3 at epochs 10 and 30
/// ```
public struct GridFile {
    /// Where a parameter's values come from.
    public enum Domain: Equatable {
        case values([Node])
        /// start, start + step, ... up to stop (inclusive, within rounding).
        case linear(start: Double, stop: Double, step: Double)
        /// `count` values spaced evenly in log scale from start to stop.
        case log(start: Double, stop: Double, count: Int)
    }

    public var path: String
    public var base: String
    public var search: GridSearch
    public var count: Int
    public var seed: UInt64
    public var metric: SelectionMetric
    public var parameters: [(key: String, domain: Domain)]
    public var constraints: [String]
    /// How trials are stopped early (`method: asha`); nil for the other methods.
    public var halving: SuccessiveHalving?

    /// Draws random points (`random`, or `asha` with a count) instead of listing every combination.
    var drawsRandomly: Bool { search == .random || (search == .asha && count > 0) }

    /// One point of the search: the overrides that turn the base job into the trial's job.
    public struct Trial: Equatable {
        public var index: Int
        /// (key, value as YAML) in the grid file's parameter order.
        public var assignments: [(key: String, value: String)]

        public static func == (a: Trial, b: Trial) -> Bool {
            a.index == b.index && a.assignments.map(\.key) == b.assignments.map(\.key)
                && a.assignments.map(\.value) == b.assignments.map(\.value)
        }

        /// `--set` arguments: "method.weights[1]=0.6".
        public var overrides: [String] { assignments.map { "\($0.key)=\($0.value)" } }
        /// The overrides and the trial's job name ("<base name>/trial-007"), so that runs and
        /// table rows of different trials stay apart.
        public func overrides(baseName: String) -> [String] { ["name=\(baseName)/\(name)"] + overrides }
        /// A folder name: "trial-007".
        public var name: String { GridFolder.trialName(index) }
    }

    /// Reads and checks a grid file; every error names the file and the key.
    public static func load(path: String) throws -> GridFile {
        func fail(_ key: String, _ problem: String) -> JobError { JobError(source: path, key: key, problem) }
        guard FileManager.default.fileExists(atPath: path) else { throw fail("", "no such grid file") }
        let text = try BoundedYAML.read(path, what: "grid file")
        guard let root = try BoundedYAML.compose(text, source: path), root.mapping != nil else {
            throw fail("", "a grid file is a mapping (base, method, parameters, ...)")
        }
        let mapping = root.mapping!
        let known = ["base", "method", "count", "seed", "metric", "parameters", "constraints", "asha"]
        for key in mapping.keys.compactMap(\.string) where !known.contains(key) {
            throw fail(key, "unknown key" + (nearest(key, in: known).map { " (did you mean '\($0)'?)" } ?? ""))
        }
        guard let baseText = mapping["base"]?.string else { throw fail("base", "needs the path of the base job file") }
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        let base = baseText.hasPrefix("/") ? baseText : folder.appendingPathComponent(baseText).standardizedFileURL.path
        let searchName = mapping["method"]?.string ?? GridSearch.grid.rawValue
        guard let search = GridSearch(rawValue: searchName) else {
            throw fail("method", "unknown search '\(searchName)' (known: grid, random, asha)")
        }
        let count =
            try mapping["count"].map { node -> Int in
                guard let value = node.int, value >= 1 else { throw fail("count", "must be a whole number >= 1") }
                return value
            } ?? 0
        if search == .random && count == 0 { throw fail("count", "random search needs a count of trials") }
        if search == .grid && mapping["count"] != nil {
            throw fail("count", "only random search (and asha, to draw at random) takes a count")
        }
        let halving = try mapping["asha"].map { node -> SuccessiveHalving in
            guard search == .asha else { throw fail("asha", "only method: asha takes an asha section") }
            return try successiveHalving(node, fail: fail)
        }
        let seed =
            try mapping["seed"].map { node -> UInt64 in
                guard let value = node.int, value >= 0 else { throw fail("seed", "must be a whole number >= 0") }
                return UInt64(value)
            } ?? 0
        let metricName = mapping["metric"]?.string ?? SelectionMetric.macroF1.rawValue
        guard let metric = SelectionMetric(rawValue: metricName) else {
            throw fail("metric", "unknown metric '\(metricName)' (known: \(SelectionMetric.known))")
        }
        guard let parameterNodes = mapping["parameters"]?.mapping, !parameterNodes.isEmpty else {
            throw fail("parameters", "needs at least one key to vary, e.g. optimizer.lr: {values: [0.001, 0.003]}")
        }
        var parameters: [(String, Domain)] = []
        for (keyNode, spec) in parameterNodes {
            guard let key = keyNode.string else { throw fail("parameters", "keys are dotted job keys") }
            parameters.append((key, try domain(spec, key: "parameters.\(key)", fail: fail)))
        }
        let constraints = try (mapping["constraints"]?.sequence ?? []).map { node -> String in
            guard let text = node.string else {
                throw fail(
                    "constraints", "each constraint is a string such as \"method.weights[1] > method.weights[2]\"")
            }
            return text
        }
        let grid = GridFile(
            path: path, base: base, search: search, count: count, seed: seed, metric: metric,
            parameters: parameters, constraints: constraints,
            halving: search == .asha ? halving ?? SuccessiveHalving() : nil)
        for constraint in constraints { _ = try grid.parse(constraint) }
        return grid
    }

    /// The `asha:` section: `rungs: [epochs]` or `min_epochs`, and `eta`.
    private static func successiveHalving(_ node: Node, fail: (String, String) -> JobError) throws
        -> SuccessiveHalving
    {
        guard let fields = node.mapping else { throw fail("asha", "is a section: {rungs: [10, 30], eta: 3}") }
        for key in fields.keys.compactMap(\.string) where !["rungs", "min_epochs", "eta"].contains(key) {
            throw fail("asha.\(key)", "unknown key (known: rungs, min_epochs, eta)")
        }
        var halving = SuccessiveHalving()
        if let eta = fields["eta"] {
            guard let value = eta.int, (2...100).contains(value) else {
                throw fail("asha.eta", "must be a whole number from 2 to 100")
            }
            halving.eta = value
        }
        if let minEpochs = fields["min_epochs"] {
            guard let value = minEpochs.int, value >= 1 else {
                throw fail("asha.min_epochs", "must be a whole number >= 1")
            }
            halving.minEpochs = value
        }
        if let rungs = fields["rungs"] {
            guard fields["min_epochs"] == nil else {
                throw fail("asha.rungs", "give rungs or min_epochs, not both")
            }
            guard let values = rungs.sequence?.map(\.int), !values.isEmpty, values.allSatisfy({ ($0 ?? 0) >= 1 }) else {
                throw fail("asha.rungs", "needs a list of epochs >= 1, e.g. [10, 30]")
            }
            let epochs = values.map { $0! }
            guard zip(epochs, epochs.dropFirst()).allSatisfy({ $0 < $1 }) else {
                throw fail("asha.rungs", "must be increasing")
            }
            halving.givenRungs = epochs
        }
        return halving
    }

    private static func domain(_ spec: Node, key: String, fail: (String, String) -> JobError) throws -> Domain {
        guard let fields = spec.mapping, fields.count == 1, let kind = fields.keys.first?.string else {
            throw fail(
                key, "needs exactly one of values: [...], linear: {start, stop, step} or log: {start, stop, count}")
        }
        let body = fields.values.first!
        func number(_ name: String) throws -> Double {
            guard let value = body.mapping?[name].flatMap(Self.numericValue) else {
                throw fail("\(key).\(kind).\(name)", "needs a number")
            }
            return value
        }
        switch kind {
        case "values":
            guard let values = body.sequence, !values.isEmpty else {
                throw fail("\(key).values", "needs a non-empty list")
            }
            return .values(Array(values))
        case "linear":
            let start = try number("start")
            let stop = try number("stop")
            let step = try number("step")
            guard step > 0, stop >= start else { throw fail("\(key).linear", "needs step > 0 and stop >= start") }
            guard (stop - start) / step < 10_000 else { throw fail("\(key).linear", "more than 10000 values") }
            return .linear(start: start, stop: stop, step: step)
        case "log":
            let start = try number("start")
            let stop = try number("stop")
            guard let count = body.mapping?["count"]?.int, count >= 1, count <= 10_000 else {
                throw fail("\(key).log.count", "needs a whole number in [1, 10000]")
            }
            guard start > 0, stop >= start else { throw fail("\(key).log", "needs 0 < start <= stop") }
            return .log(start: start, stop: stop, count: count)
        default:
            throw fail("\(key).\(kind)", "unknown domain (known: values, linear, log)")
        }
    }

    /// A scalar node's number (nil for text, lists and sections).
    static func numericValue(_ node: Node) -> Double? {
        guard let text = node.scalar?.string else { return nil }
        return Double(text)
    }

    /// The values a domain lists, as YAML text.
    static func listed(_ domain: Domain) -> [String] {
        switch domain {
        case .values(let nodes): return nodes.map(render)
        case .linear(let start, let stop, let step):
            return steps(from: start, through: stop, by: step).map(format)
        case .log(let start, let stop, let count):
            guard count > 1 else { return [format(start)] }
            return (0..<count).map { format(start * Foundation.pow(stop / start, Double($0) / Double(count - 1))) }
        }
    }

    static func format(_ value: Double) -> String {
        let rounded = (value * 1e12).rounded() / 1e12
        return rounded == rounded.rounded() && abs(rounded) < 1e15 ? String(Int(rounded)) + ".0" : "\(rounded)"
    }

    /// A node as one-line YAML: scalars as written, sequences as "[a, b]".
    static func render(_ node: Node) -> String {
        if let sequence = node.sequence { return "[" + sequence.map(render).joined(separator: ", ") + "]" }
        if let mapping = node.mapping {
            return "{" + mapping.map { "\(render($0.key)): \(render($0.value))" }.joined(separator: ", ") + "}"
        }
        return node.string ?? ""
    }

    /// Every trial: all combinations (the last parameter varying fastest) or `count` random
    /// draws, without those that break a constraint.
    public func trials() throws -> [Trial] {
        var points: [[String]] = []
        if !drawsRandomly {
            points = [[]]
            for (_, domain) in parameters {
                let values = Self.listed(domain)
                points = points.flatMap { prefix in values.map { prefix + [$0] } }
                guard points.count <= 100_000 else {
                    throw JobError(source: path, key: "parameters", "more than 100000 combinations")
                }
            }
            let comparisons = try constraints.map { ($0, try parse($0)) }
            points = try points.filter { try satisfies($0, comparisons) }
        } else {
            let comparisons = try constraints.map { ($0, try parse($0)) }
            var generator = SeededGenerator(seed: seed, stream: 7)
            var attempts = 0
            while points.count < count {
                attempts += 1
                guard attempts <= count * 1000 else {
                    throw JobError(
                        source: path, key: "constraints",
                        "only \(points.count) of \(count) random draws met the constraints in \(attempts - 1) attempts")
                }
                let point = parameters.map { Self.draw($0.domain, &generator) }
                if try satisfies(point, comparisons) { points.append(point) }
            }
        }
        return points.enumerated().map { index, values in
            Trial(index: index, assignments: zip(parameters.map(\.key), values).map { ($0, $1) })
        }
    }

    static func draw(_ domain: Domain, _ generator: inout SeededGenerator) -> String {
        switch domain {
        case .values(let nodes): return render(nodes[Int(generator.next() % UInt64(nodes.count))])
        case .linear(let start, let stop, _): return format(start + Double(generator.uniform(0, 1)) * (stop - start))
        case .log(let start, let stop, _):
            return format(start * Foundation.pow(stop / start, Double(generator.uniform(0, 1))))
        }
    }

    // MARK: Constraints

    /// An operator between two operands of a constraint; the raw value is how a grid file writes it.
    enum ComparisonOperator: String, CaseIterable {
        case lessOrEqual = "<="
        case greaterOrEqual = ">="
        case equal = "=="
        case notEqual = "!="
        case less = "<"
        case greater = ">"

        /// Whether `a <operator> b`.
        func holds(_ a: Double, _ b: Double) -> Bool {
            switch self {
            case .less: a < b
            case .lessOrEqual: a <= b
            case .greater: a > b
            case .greaterOrEqual: a >= b
            case .equal: a == b
            case .notEqual: a != b
            }
        }
    }

    /// A chain of comparisons: operands (numbers or parameter references) and the operators between them.
    struct Comparison {
        var operands: [String]
        var operators: [ComparisonOperator]
    }

    func parse(_ text: String) throws -> Comparison {
        var operands: [String] = []
        var operators: [ComparisonOperator] = []
        var rest = Substring(text)
        let symbols = ComparisonOperator.allCases
        while true {
            guard
                let (range, symbol) = symbols.compactMap({ s in rest.range(of: s.rawValue).map { ($0, s) } }).min(by: {
                    $0.0.lowerBound < $1.0.lowerBound
                })
            else {
                operands.append(rest.trimmingCharacters(in: .whitespaces))
                break
            }
            operands.append(rest[..<range.lowerBound].trimmingCharacters(in: .whitespaces))
            // "<=" before "<": at the same position the longer symbol wins.
            let longer = symbols.filter { $0.rawValue.count == 2 }.first {
                rest[range.lowerBound...].hasPrefix($0.rawValue)
            }
            let used = longer ?? symbol
            operators.append(used)
            rest = rest[rest.index(range.lowerBound, offsetBy: used.rawValue.count)...]
        }
        guard !operators.isEmpty, operands.allSatisfy({ !$0.isEmpty }) else {
            throw JobError(source: path, key: "constraints", "'\(text)' is not a comparison such as \"a > b > c\"")
        }
        for operand in operands where Double(operand) == nil && reference(operand) == nil {
            throw JobError(
                source: path, key: "constraints", "'\(operand)' in '\(text)' is neither a number nor a varied parameter"
            )
        }
        return Comparison(operands: operands, operators: operators)
    }

    /// Where a constraint operand points: a parameter, or an element of a list-valued one ("method.weights[1]").
    private func reference(_ operand: String) -> (parameter: Int, element: Int?)? {
        if let index = parameters.firstIndex(where: { $0.key == operand }) { return (index, nil) }
        guard operand.hasSuffix("]"), let open = operand.lastIndex(of: "["),
            let element = Int(operand[operand.index(after: open)..<operand.index(before: operand.endIndex)]),
            let index = parameters.firstIndex(where: { $0.key == String(operand[..<open]) })
        else { return nil }
        return (index, element)
    }

    /// Whether `point` meets every parsed constraint (`(text, comparison)`).
    func satisfies(_ point: [String], _ comparisons: [(String, Comparison)]) throws -> Bool {
        for (text, comparison) in comparisons {
            let values = try comparison.operands.map { operand -> Double in
                if let number = Double(operand) { return number }
                let (parameter, element) = reference(operand)!
                let valueText = point[parameter]
                let node = try BoundedYAML.composeValue(
                    valueText, source: path, key: [parameters[parameter].key])
                let scalar: Node?
                if let element {
                    scalar = node?.sequence.flatMap { element < $0.count ? $0[element] : nil }
                } else {
                    scalar = node
                }
                guard let number = scalar.flatMap(Self.numericValue) else {
                    throw JobError(
                        source: path, key: "constraints", "'\(operand)' is '\(valueText)', not a number, in '\(text)'")
                }
                return number
            }
            for (k, comparisonOperator) in comparison.operators.enumerated()
            where !comparisonOperator.holds(values[k], values[k + 1]) {
                return false
            }
        }
        return true
    }

    /// Every trial's job, checked as `cgt train` would check it: the base job, the trial's
    /// parameters, then `commandLine` (`cgt grid --set`, `--data`, `--seed`) over every trial.
    public func jobs(commandLine: JobOverrides = JobOverrides()) throws -> [(Trial, Job)] {
        let baseName = try JobLoader.load(path: base).name
        return try trials().map { trial in
            var job = try JobLoader.load(
                path: base,
                layers: [
                    JobLoader.Overrides(
                        trial.overrides(baseName: baseName), from: "\(path): parameters of \(trial.name)"),
                    JobLoader.Overrides(commandLine.assignments),
                ])
            try commandLine.setValues(of: &job)
            return (trial, job)
        }
    }
}
