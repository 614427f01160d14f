import CGTCheckpoint
import CGTData
import CGTModel
import Foundation

/// Everything `cgt eval` reports about a model on a split: routing statistics under a policy,
/// confidence quality per exit, routing per class and, if asked, a threshold sweep with the
/// thresholds chosen for a target. Written as eval.json and CSV files.
public struct EvaluationReport {
    public var statistics: RoutingStatistics
    public var policy: ExitPolicy
    public var quality: [ConfidenceQuality]
    /// `[class][exit]`: the fraction of each class's samples each exit answers.
    public var perClassExitFractions: [[Double]]
    public var classNames: [String]
    public var sweep: ThresholdSweep?
    /// The sweep on the selection split, and the thresholds chosen there, with their test results.
    public var choices: [Choice] = []
    /// Measured inference time with real early exits, if asked.
    public var latency: InferenceLatency?
    /// A threshold certified by `RiskControl`, if asked.
    public var riskControl: RiskReport?
    /// MSDNet's budgeted protocol, if asked.
    public var budgeted: BudgetedCurve?
    /// The test split's records the report was made from.
    public var testRecords: ExitRecords { records }
    /// What was evaluated: the checkpoint, its epoch, the data and split.
    public var provenance: EvaluationProvenance?
    let records: ExitRecords
    let exitFLOPs: [Int]
    let fullNetworkFLOPs: Int

    public struct Choice: Codable, Equatable {
        public var goal: String
        public var chosenOn: DatasetSplitName
        public var threshold: Double?
        public var selection: ThresholdSweep.Point?
        public var test: ThresholdSweep.Point?

        enum CodingKeys: String, CodingKey {
            case goal
            case chosenOn = "chosen_on"
            case threshold, selection, test
        }
    }

    public init(records: ExitRecords, policy: ExitPolicy, exitFLOPs: [Int], fullNetworkFLOPs: Int, classNames: [String])
    {
        self.records = records
        self.policy = policy
        self.exitFLOPs = exitFLOPs
        self.fullNetworkFLOPs = fullNetworkFLOPs
        self.classNames = classNames
        statistics = records.tally(policy).statistics(
            tau: policy.thresholds.first ?? 0, exitFLOPs: exitFLOPs, fullNetworkFLOPs: fullNetworkFLOPs)
        quality = records.confidenceQuality(criterion: policy.criterion)
        perClassExitFractions = records.perClassExitFractions(policy)
    }

    /// Sweeps `taus` on the test records; with a target or budget, chooses the threshold on
    /// `selection` (validation or training records) and reports its result on the test records.
    public mutating func addSweep(
        taus: [Float], criterion: ExitCriterion, fallback: ExitFallback, selection: ExitRecords?,
        selectionSplit: DatasetSplitName, targetAccuracy: Double?, budget: Double?
    ) {
        let testSweep = ThresholdSweep(
            records: records, thresholds: taus, criterion: criterion, fallback: fallback,
            exitFLOPs: exitFLOPs, fullNetworkFLOPs: fullNetworkFLOPs)
        sweep = testSweep
        guard let selection else { return }
        let selectionSweep = ThresholdSweep(
            records: selection, thresholds: taus, criterion: criterion, fallback: fallback,
            exitFLOPs: exitFLOPs, fullNetworkFLOPs: fullNetworkFLOPs)
        func choice(_ goal: String, _ point: ThresholdSweep.Point?) -> Choice {
            Choice(
                goal: goal, chosenOn: selectionSplit, threshold: point?.threshold, selection: point,
                test: point.flatMap { p in testSweep.points.first { $0.threshold == p.threshold } })
        }
        if let targetAccuracy {
            choices.append(
                choice("accuracy >= \(targetAccuracy) at least cost", selectionSweep.cheapest(reaching: targetAccuracy))
            )
        }
        if let budget {
            choices.append(
                choice("best accuracy at relative cost <= \(budget)", selectionSweep.mostAccurate(within: budget)))
        }
    }

    /// The threshold `risk` certifies on `calibration` (the validation split), its gap risk on
    /// the test split, and with `resplits` the guarantee checked on random halvings of the test split.
    public mutating func addRiskControl(
        _ risk: RiskControl, taus: [Float], calibration: ExitRecords, resplits: Int
    ) {
        let criterion = policy.criterion
        let fallback = policy.fallback
        let choice = risk.choose(on: calibration, thresholds: taus, criterion: criterion, fallback: fallback)
        var report = RiskReport(
            epsilon: risk.epsilon, delta: risk.delta, calibrationSamples: calibration.count, choice: choice)
        if let tau = choice.threshold {
            let chosen = ExitPolicy(
                criterion: criterion, thresholds: Array(repeating: Float(tau), count: records.exits), fallback: fallback
            )
            report.testRisk = RiskControl.risk(of: chosen, on: records)
            report.test =
                ThresholdSweep(
                    records: records, thresholds: [Float(tau)], criterion: criterion, fallback: fallback,
                    exitFLOPs: exitFLOPs, fullNetworkFLOPs: fullNetworkFLOPs
                ).points.first
        }
        if resplits > 0 {
            let risks = risk.resplitRisks(
                of: records, thresholds: taus, criterion: criterion, fallback: fallback, resplits: resplits, seed: 0)
            report.resplits = RiskReport.Resplits(
                count: resplits, certified: risks.compactMap { $0 }.count,
                withinEpsilon: risks.filter { $0.map { $0 <= risk.epsilon } ?? true }.count,
                risks: risks)
        }
        riskControl = report
    }

    /// Lines for the terminal after the routing table.
    public var summary: String {
        var lines = [
            "exit policy: \(policy.criterion.rawValue), thresholds \(policy.thresholds), fallback \(policy.fallback.rawValue)"
        ]
        for (e, q) in quality.enumerated() {
            lines.append(
                String(
                    format: "  exit %d: ECE %.4f, failure-prediction AUROC %@", e + 1, q.ece,
                    q.auroc.map { String(format: "%.4f", $0) } ?? "-"))
        }
        if let sweep {
            let front = sweep.points.filter(\.paretoOptimal)
            lines.append("sweep: \(sweep.points.count) thresholds, \(front.count) Pareto-optimal")
        }
        for c in choices {
            if let t = c.threshold, let test = c.test {
                lines.append(
                    String(
                        format: "%@: threshold %.3f (chosen on %@); on test: accuracy %.4f, relative cost %.3f", c.goal,
                        t, c.chosenOn.rawValue, test.accuracy, test.relativeCost))
            } else {
                lines.append("\(c.goal): no threshold of the sweep meets it on \(c.chosenOn)")
            }
        }
        if let riskControl { lines.append(riskControl.summary) }
        if let budgeted { lines.append(budgeted.summary) }
        if let latency { lines.append(latency.report) }
        return lines.joined(separator: "\n")
    }

    /// eval.json (the routing statistics' keys and the report's), per_class_routing.csv,
    /// reliability.csv, samples.csv and, with a sweep, sweep.csv; budgeted.csv with `budgeted`.
    public func files() throws -> [(String, Data)] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        var object = try JSONSerialization.jsonObject(with: try encoder.encode(statistics)) as! [String: Any]
        func json<T: Encodable>(_ value: T) throws -> Any {
            try JSONSerialization.jsonObject(with: try encoder.encode(value), options: .fragmentsAllowed)
        }
        object["policy"] = try json(policy)
        object["confidence_quality"] = try json(quality)
        object["per_class_exit_fractions"] = perClassExitFractions
        object["class_names"] = classNames
        if let sweep { object["sweep"] = try json(sweep) }
        if !choices.isEmpty { object["chosen_thresholds"] = try json(choices) }
        if let riskControl { object["risk_control"] = try json(riskControl) }
        if let budgeted { object["budgeted"] = try json(budgeted) }
        if let latency { object["latency"] = try json(latency) }
        if let provenance {
            for (key, value) in try json(provenance) as! [String: Any] { object[key] = value }
        }
        let evalJSON = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        let exits = perClassExitFractions.first?.count ?? 0
        var perClass = [(["class", "name"] + (0..<exits).map { "exit\($0 + 1)_fraction" }).joined(separator: ",")]
        for (c, row) in perClassExitFractions.enumerated() {
            let name = c < classNames.count ? "\"\(classNames[c].replacingOccurrences(of: "\"", with: "\"\""))\"" : ""
            perClass.append(([String(c), name] + row.map { String($0) }).joined(separator: ","))
        }
        var reliability = ["exit,bin_lower,bin_upper,count,mean_confidence,accuracy"]
        for (e, q) in quality.enumerated() {
            for b in q.bins {
                reliability.append("\(e + 1),\(b.lower),\(b.upper),\(b.count),\(b.meanConfidence),\(b.accuracy)")
            }
        }
        var result: [(String, Data)] = [
            (EvaluationFolder.reportFileName, evalJSON),
            ("per_class_routing.csv", Data((perClass.joined(separator: "\n") + "\n").utf8)),
            ("reliability.csv", Data((reliability.joined(separator: "\n") + "\n").utf8)),
            ("samples.csv", Data(samplesCSV.utf8)),
        ]
        if let sweep { result.append(("sweep.csv", Data(sweep.csv.utf8))) }
        if let budgeted { result.append(("budgeted.csv", Data(budgeted.csv.utf8))) }
        return result
    }

    /// One row per sample, in split order: its label, the exit that answers it under the
    /// policy and that exit's prediction, then what every exit said (prediction, -1 for a
    /// declining ClassyNet head, and the three confidence scores), for analyses of single
    /// samples and for checking a model re-implemented elsewhere against cgt's outputs.
    var samplesCSV: String {
        let exits = records.exits
        var header = ["sample", "label", "exit", "prediction", "correct"]
        for e in 1...exits {
            header += ["exit\(e)_prediction", "exit\(e)_max_probability", "exit\(e)_entropy_score", "exit\(e)_margin"]
        }
        var lines = [header.joined(separator: ",")]
        lines.reserveCapacity(records.count + 1)
        records.forEachRoute(policy) { i, exit in
            let range = (i * exits)..<((i + 1) * exits)
            let prediction = records.predictions[i * exits + exit]
            var fields = [
                String(i), String(records.labels[i]), String(exit + 1), String(prediction),
                prediction == records.labels[i] ? "1" : "0",
            ]
            for k in range {
                fields += [
                    String(records.predictions[k]), String(records.maxProbability[k]),
                    String(records.entropyScore[k]), String(records.margin[k]),
                ]
            }
            lines.append(fields.joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// What an evaluation measured, recorded in `eval.json` so that a result can be traced to a
/// model file and a data file (by content, wherever it lies).
public struct EvaluationProvenance: Codable, Equatable, Sendable {
    /// Version of `eval.json`'s layout; raised when a key changes meaning.
    public static let currentFormat = 1
    public var formatVersion = currentFormat
    /// The checkpoint file whose model was evaluated (resolved path).
    public var checkpoint: String
    /// Epochs the model had trained.
    public var epoch: Int
    /// "training" or "re-estimated": which BatchNorm statistics the model used.
    public var batchNormStatistics: String
    /// The data file (resolved path) and its SHA-256.
    public var data: String
    public var dataSHA256: String
    /// The split the routing statistics are of.
    public var split: DatasetSplitName

    public init(
        checkpoint: String, epoch: Int, batchNormStatistics: String, data: String, dataSHA256: String,
        split: DatasetSplitName
    ) {
        self.checkpoint = checkpoint
        self.epoch = epoch
        self.batchNormStatistics = batchNormStatistics
        self.data = data
        self.dataSHA256 = dataSHA256
        self.split = split
    }

    /// `statistics` as pretty-printed JSON with these keys beside its own (`eval.json`).
    public func json<Statistics: Encodable>(_ statistics: Statistics) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        var object = try JSONSerialization.jsonObject(with: try encoder.encode(statistics)) as? [String: Any] ?? [:]
        let mine = try JSONSerialization.jsonObject(with: try encoder.encode(self)) as? [String: Any] ?? [:]
        object.merge(mine) { _, provenance in provenance }
        return try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    }

    enum CodingKeys: String, CodingKey {
        case formatVersion = "format_version"
        case checkpoint, epoch
        case batchNormStatistics = "batchnorm_statistics"
        case data
        case dataSHA256 = "data_sha256"
        case split
    }
}

/// What `cgt eval --risk` found: the guarantee asked for, the threshold certified on the
/// calibration (validation) samples, what it does on the test split, and, with
/// `--risk-resplits`, how often the guarantee held on random halvings of the test split.
public struct RiskReport: Codable, Equatable, Sendable {
    public var epsilon: Double
    public var delta: Double
    public var calibrationSamples: Int
    public var choice: RiskControl.Choice
    /// The chosen threshold's accuracy loss against the full network on the test split.
    public var testRisk: Double?
    public var test: ThresholdSweep.Point?
    public var resplits: Resplits?

    public struct Resplits: Codable, Equatable, Sendable {
        public var count: Int
        /// Halvings on which some threshold was certified.
        public var certified: Int
        /// Halvings on which the guarantee held: no threshold certified, or one whose risk on
        /// the other half is within epsilon.
        public var withinEpsilon: Int
        public var risks: [Double?]

        enum CodingKeys: String, CodingKey {
            case count, certified, risks
            case withinEpsilon = "within_epsilon"
        }
    }

    enum CodingKeys: String, CodingKey {
        case epsilon, delta, choice, test, resplits
        case calibrationSamples = "calibration_samples"
        case testRisk = "test_risk"
    }

    public var guarantee: String {
        String(
            format:
                "accuracy loss against the full network <= %g with probability >= %g (Learn then Test, Hoeffding, %d validation samples)",
            epsilon, 1 - delta, calibrationSamples)
    }

    var summary: String {
        var lines: [String] = []
        if let tau = choice.threshold, let test, let testRisk {
            lines.append(
                String(
                    format:
                        "risk control: threshold %.3f certifies %@; on test: loss %.4f, accuracy %.4f, relative cost %.3f",
                    tau, guarantee, testRisk, test.accuracy, test.relativeCost))
        } else {
            lines.append("risk control: no threshold of the sweep certifies \(guarantee)")
        }
        if let resplits {
            lines.append(
                String(
                    format:
                        "  %d random halvings of the test split: held on %d (%.0f %%; asked at least %.0f %%), a threshold certified on %d",
                    resplits.count, resplits.withinEpsilon,
                    100 * Double(resplits.withinEpsilon) / Double(resplits.count),
                    100 * (1 - delta), resplits.certified))
        }
        return lines.joined(separator: "\n")
    }
}
