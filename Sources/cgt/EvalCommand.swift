import ArgumentParser
import CGTCheckpoint
import CGTDNNL
import CGTData
import CGTEvaluation
import CGTExperiments
import CGTFiles
import CGTJob
import CGTKernels
import CGTMPI
import CGTModel
import CGTTraining
import Foundation

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract:
            "Early-exit inference of a checkpoint on a test split: routing, accuracy, cost and confidence quality.",
        discussion: """
            Writes eval.json, per_class_routing.csv, reliability.csv and samples.csv (and sweep.csv with --sweep) to --out. \
            Under mpirun the test split and the BatchNorm re-estimation are sharded over the ranks; the \
            numbers are those of one process. Thresholds chosen with --target-accuracy or --budget are \
            chosen on the validation split, or on the training split when the file has none, never on the test split.
            """)

    @Option(help: "The checkpoint (.h5) to evaluate.")
    var checkpoint: String

    @OptionGroup var dataset: DatasetOverride

    @Option(help: "Exit threshold at every exit (default: the checkpoint's exit policy).")
    var tau: Float?

    @Option(help: "One threshold per exit, comma-separated (instead of --tau).")
    var thresholds: String?

    @Option(
        help:
            "Exit criterion: max_probability (the paper), entropy (1 - normalised entropy) or margin (top-1 minus top-2); default the checkpoint's."
    )
    var criterion: ExitCriterion?

    @Option(help: "When no exit fires: last (the paper) or most_confident; default the checkpoint's.")
    var fallback: ExitFallback?

    @Flag(
        help:
            "Store the exit policy in the checkpoint file: the one chosen by --target-accuracy or --budget, else the one evaluated."
    )
    var savePolicy = false

    @Option(help: "Sweep one threshold at every exit over start:stop:step, e.g. 0.5:0.99:0.01.")
    var sweep: String?

    @Option(help: "Choose the cheapest threshold reaching this accuracy (on validation or training data).")
    var targetAccuracy: Double?

    @Option(help: "Choose the most accurate threshold within this relative cost (on validation or training data).")
    var budget: Double?

    @Option(
        help:
            "Choose the cheapest threshold whose accuracy loss against the full network is at most this, certified on the validation split with probability 1 - --delta (Learn then Test)."
    )
    var risk: Double?

    @Option(help: "With --risk: the probability with which the guarantee may fail.")
    var delta = 0.1

    @Option(help: "With --risk: check the guarantee on this many random halvings of the test split (0: no).")
    var riskResplits = 0

    @Option(
        help:
            "MSDNet's budgeted protocol: thresholds fitted on the validation (or training) split for exit proportions q^k, q 0.05-2.00; the curve's mean accuracy over this relative-cost range LO:HI, e.g. 0.3:0.9."
    )
    var budgeted: String?

    @Option(help: "Measure inference latency with real early exits on this many test samples (0: no).")
    var latency = 0

    @Option(help: "Batch size of the batched latency measurement.")
    var latencyBatch = 256

    @Flag(
        inversion: .prefixedNo,
        help: ArgumentHelp(
            "Re-estimate BatchNorm statistics on a seeded subset of the training split first (the job's eval.bn_recalibration_batches), and write the model so changed as <out>/model.h5.",
            discussion:
                "Without it the checkpoint's own statistics are used: the ones training's evaluation re-estimated (eval.bn_recalibration), so the file is the model reported."
        ))
    var bnRecalibration = false

    @Option(help: "Samples per inference batch.")
    var batchSize = 1024

    @Option(help: "Folder for the results (default: <run>/eval next to the checkpoint's checkpoints/ folder).")
    var out: String?

    func validate() throws {
        if let tau, !(tau > 0 && tau <= 1) { throw ValidationError("--tau must be in (0, 1], got \(tau)") }
        if batchSize < 1 || batchSize > 1 << 24 { throw ValidationError("--batch-size must be in [1, 16777216]") }
        if savePolicy && bnRecalibration {
            throw ValidationError(
                "--save-policy stores the policy in the checkpoint, whose BatchNorm statistics --bn-recalibration changes; evaluate <out>/model.h5 with --save-policy instead"
            )
        }
        if savePolicy && [targetAccuracy != nil, budget != nil, risk != nil].filter({ $0 }).count > 1 {
            throw ValidationError("--save-policy stores one policy: give one of --target-accuracy, --budget and --risk")
        }
        if let risk, !(risk > 0 && risk < 1) { throw ValidationError("--risk must be in (0, 1)") }
        if let budgeted, budgetRange(budgeted) == nil {
            throw ValidationError("--budgeted needs LO:HI with 0 <= LO < HI <= 1 (relative cost), got '\(budgeted)'")
        }
        if !(delta > 0 && delta < 1) { throw ValidationError("--delta must be in (0, 1)") }
        if risk == nil && riskResplits != 0 { throw ValidationError("--risk-resplits goes with --risk") }
        if riskResplits < 0 || riskResplits > 10_000 { throw ValidationError("--risk-resplits must be in [0, 10000]") }
        if let thresholds {
            guard let values = thresholdValues, !values.isEmpty, values.allSatisfy({ $0 >= 0 && $0 <= 1 }) else {
                throw ValidationError("--thresholds needs comma-separated values in [0, 1], got '\(thresholds)'")
            }
            if tau != nil { throw ValidationError("give --tau or --thresholds, not both") }
        }
        if let sweep, ThresholdSweep.range(sweep) == nil {
            throw ValidationError("--sweep needs start:stop:step within [0, 1], got '\(sweep)'")
        }
        if let targetAccuracy, !(targetAccuracy > 0 && targetAccuracy <= 1) {
            throw ValidationError("--target-accuracy must be in (0, 1]")
        }
        if let budget, !(budget > 0) { throw ValidationError("--budget must be a positive relative cost") }
        if latency < 0 || latencyBatch < 1 || latencyBatch > 1 << 24 {
            throw ValidationError("--latency must be >= 0 and --latency-batch in [1, 16777216]")
        }
    }

    func run() throws {
        let evaluation = self.evaluation
        try underMPI { world in
            try Self.present(evaluation.run(over: world), of: evaluation, savingPolicy: savePolicy)
        }
    }

    /// What the options ask, as the library's evaluation of a checkpoint.
    var evaluation: CheckpointEvaluation {
        var evaluation = CheckpointEvaluation(checkpoint: checkpoint)
        evaluation.dataPath = dataset.data
        evaluation.thresholds = tau.map { .uniform($0) } ?? thresholdValues.map { .perExit($0) }
        evaluation.criterion = criterion
        evaluation.fallback = fallback
        evaluation.sweep = sweep.flatMap(ThresholdSweep.range)
        evaluation.targetAccuracy = targetAccuracy
        evaluation.budget = budget
        evaluation.risk = risk.map { RiskControl(epsilon: $0, delta: delta) }
        evaluation.riskResplits = riskResplits
        evaluation.budgeted = budgeted.flatMap(budgetRange)
        evaluation.latency = latency
        evaluation.latencyBatch = latencyBatch
        evaluation.bnRecalibration = bnRecalibration
        evaluation.batchSize = batchSize
        evaluation.out = out
        return evaluation
    }

    /// Prints what rank 0's evaluation measured and wrote (nothing on the other ranks); with
    /// `savingPolicy`, stores the chosen policy in the checkpoint. `cgt report` shows its
    /// evaluations the same way.
    static func present(
        _ outcome: CheckpointEvaluation.Outcome?, of evaluation: CheckpointEvaluation, savingPolicy: Bool
    )
        throws
    {
        guard let outcome else { return }
        let report = outcome.written.report
        print(RoutingTable.render(report.statistics))
        print(report.summary)
        print(
            "wrote \(outcome.written.folder.reportFile) and its CSV files\(outcome.written.evaluatedModel.map { ", and the model it measured, \($0)" } ?? "")"
        )
        guard savingPolicy else { return }
        let policy = try evaluation.policyToSave(report, evaluated: outcome.loaded.policy)
        try evaluation.save(policy, evaluated: outcome.loaded.stored)
        print(
            "stored the exit policy in \(evaluation.checkpoint): \(policy.criterion.rawValue), thresholds \(policy.thresholds), fallback \(policy.fallback.rawValue)"
        )
    }

    /// `--budgeted LO:HI` as a range of relative cost (nil unless 0 <= LO < HI <= 1).
    private func budgetRange(_ text: String) -> ClosedRange<Double>? {
        let parts = text.split(separator: ":").map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 2, let low = parts[0], let high = parts[1], low >= 0, low < high, high <= 1 else {
            return nil
        }
        return low...high
    }

    /// `--thresholds` as numbers (nil if absent or if one of them is not a number).
    private var thresholdValues: [Float]? {
        guard let parts = thresholds?.split(separator: ",") else { return nil }
        let values = parts.compactMap { Float($0.trimmingCharacters(in: .whitespaces)) }
        return values.count == parts.count ? values : nil
    }
}
