import CGTCheckpoint
import CGTDNNL
import CGTData
import CGTFiles
import CGTJob
import CGTKernels
import CGTModel
import Foundation

/// Evaluating a checkpoint: load it with its data, re-estimate BatchNorm if asked, score the
/// test split under an exit policy (with sweeps, chosen thresholds, risk control, the budgeted
/// protocol and latency as asked), and write the report. `cgt eval` and `cgt report` both call
/// this, with typed arguments.
///
/// Three steps, because ranks take part differently: `load` is local work that can fail on one
/// rank alone (the caller agrees on failures); `evaluate` is a collective over the ranks;
/// `write` is rank 0's.
public struct CheckpointEvaluation: Sendable {
    /// The exit thresholds asked for, over the checkpoint's own policy.
    public enum Thresholds: Sendable, Equatable {
        /// One threshold at every exit.
        case uniform(Float)
        /// One per exit.
        case perExit([Float])
    }

    /// The checkpoint file.
    public var checkpoint: String
    /// Another data file in the same layout as the job's `data.path`.
    public var dataPath: String?
    /// Changes to the checkpoint's exit policy; nil keeps its own.
    public var thresholds: Thresholds?
    public var criterion: ExitCriterion?
    public var fallback: ExitFallback?
    /// Thresholds to sweep at every exit.
    public var sweep: [Float]?
    public var targetAccuracy: Double?
    public var budget: Double?
    public var risk: RiskControl?
    public var riskResplits = 0
    /// MSDNet's budgeted protocol over this relative-cost range.
    public var budgeted: ClosedRange<Double>?
    /// Test samples to measure early-exit latency on (0: none), and the batched measurement's batch.
    public var latency = 0
    public var latencyBatch = 256
    /// Re-estimate BatchNorm on the training split first (the subset `RecalibrationPlan` draws,
    /// as training's evaluation does), and write the model so changed.
    public var bnRecalibration = false
    /// Samples per inference batch.
    public var batchSize = 1024
    /// Where the report goes; nil: the run's `eval/` folder.
    public var out: String?

    public init(checkpoint: String) { self.checkpoint = checkpoint }

    /// The folder the report goes to: `out`, or `eval/` of the run the checkpoint belongs to.
    public var folder: EvaluationFolder { out.map(EvaluationFolder.init(path:)) ?? run.evaluation }

    /// The run folder the checkpoint belongs to (the folder above `checkpoints/`, else its own).
    public var run: RunDirectory { RunDirectory(containing: checkpoint) }

    /// A checkpoint loaded for evaluation: the file, its network with the stored weights, its
    /// data and the policy to evaluate.
    public struct Loaded {
        public let stored: Checkpoint
        public let network: EarlyExitNetwork
        /// The open data file (the caller of `load` closes it).
        public let reader: DatasetReader
        public let policy: ExitPolicy
        public let dataPath: String
        /// This rank's rows of the BatchNorm re-estimation batches, with `bnRecalibration`.
        let recalibration: RecalibrationShare?
    }

    /// Reads the checkpoint and opens its data on rank `rank` of `ranks`: the network must fit
    /// the memory budget at the largest batch it will see (evaluation, or a rank's part of a
    /// BatchNorm re-estimation batch), whose rows are read here too. Local work that can fail
    /// on one rank alone (the caller agrees on failures); the caller closes `reader`.
    public func load(rank: Int, ranks: Int) throws -> Loaded {
        guard FileManager.default.fileExists(atPath: checkpoint) else {
            throw CheckpointError(file: checkpoint, "no such file")
        }
        try OutputFolder.check(folder.path)
        let stored = try Checkpoint.read(from: checkpoint)
        DNNLRuntime.setThreadCount(stored.job.runtime.blasThreads)
        let dataPath = self.dataPath ?? stored.job.data.path
        if self.dataPath == nil && !FileManager.default.fileExists(atPath: dataPath) {
            throw CheckpointError(
                file: checkpoint,
                "its data.path \(dataPath) does not exist here\(dataPath.hasPrefix("/") ? "" : " (a relative path is read from the working directory)"); give the data file with --data"
            )
        }
        let reader = try DatasetReader(path: dataPath)
        let network = try stored.restoredNetwork(for: reader, dataPath: dataPath, source: checkpoint)
        if let refusal = stored.job.modelSizeRefusal(
            featureShape: stored.featureShape, classes: stored.classNames.count, batch: evaluationBatch(reader),
            training: false)
        {
            throw EvaluationError("--batch-size \(batchSize): \(refusal); give a smaller --batch-size")
        }
        let recalibrationBatch = (stored.job.training.batchSize + ranks - 1) / ranks
        if bnRecalibration,
            let refusal = stored.job.modelSizeRefusal(
                featureShape: stored.featureShape, classes: stored.classNames.count, batch: recalibrationBatch,
                training: false)
        {
            throw CheckpointError(
                file: checkpoint,
                "--bn-recalibration with the job's training.batch_size \(stored.job.training.batchSize): \(refusal)")
        }
        let recalibration =
            bnRecalibration ? try stored.job.recalibrationShare(reader: reader, rank: rank, ranks: ranks) : nil
        return Loaded(
            stored: stored, network: network, reader: reader,
            policy: try exitPolicy(stored: stored.exitPolicy, exits: network.exitCount), dataPath: dataPath,
            recalibration: recalibration)
    }

    /// The report of `loaded` (a collective over `ranks`; every rank gets it), its provenance
    /// and latency still to be added by `write`.
    public func evaluate(_ loaded: Loaded, on ranks: EvaluationRanks) throws -> EvaluationReport {
        let evaluation = DistributedEvaluation(
            network: loaded.network, ranks: ranks, batchSize: evaluationBatch(loaded.reader),
            classGroups: loaded.stored.classGroups)
        if let share = loaded.recalibration { evaluation.recalibrateBatchNorm(on: share) }
        let request = EvaluationRequest(
            policy: loaded.policy, sweep: sweep, targetAccuracy: targetAccuracy, budget: budget, risk: risk,
            riskResplits: riskResplits, budgeted: budgeted)
        return try evaluation.report(reader: loaded.reader, classNames: loaded.stored.classNames, request: request)
    }

    /// What `write` wrote: the report as written and the model it measured.
    public struct Written {
        public let report: EvaluationReport
        public let folder: EvaluationFolder
        /// `<out>/model.h5` with the re-estimated BatchNorm statistics, or nil (the checkpoint itself).
        public let evaluatedModel: String?
    }

    /// Rank 0: adds what was evaluated (and the latency, measured here on one core) to `report`
    /// and writes it, with the model it measured when BatchNorm was re-estimated.
    public func write(_ report: EvaluationReport, of loaded: Loaded) throws -> Written {
        var report = report
        let folder = self.folder
        try OutputFolder.create(folder.path)
        // The report names the file that holds the model it measured.
        var evaluated = (checkpoint: checkpoint, model: loaded.stored)
        if bnRecalibration {
            evaluated = (folder.evaluatedModel, loaded.stored.withEvaluatedBuffers(of: loaded.network))
            try evaluated.model.write(to: evaluated.checkpoint)
        }
        report.provenance = EvaluationProvenance(
            checkpoint: URL(fileURLWithPath: evaluated.checkpoint).standardizedFileURL.path,
            epoch: loaded.stored.epoch, batchNormStatistics: evaluated.model.batchNormStatistics,
            data: URL(fileURLWithPath: loaded.dataPath).standardizedFileURL.path,
            dataSHA256: try SourceFile.sha256(ofFileAt: loaded.dataPath), split: .test)
        if latency > 0 {
            // Rank 0 alone: timings are of one process on one core.
            let inference = EarlyExitInference(
                network: loaded.network, policy: loaded.policy, maxBatch: max(1, min(latencyBatch, latency)))
            let reader = loaded.reader
            report.latency = InferenceLatency.measure(
                inference,
                split: try reader.read(
                    split: .test, rows: 0..<min(latency, reader.splitSizes[.test] ?? 0)),
                samples: latency, batch: min(latencyBatch, latency), relativeCost: report.statistics.relativeCost)
        }
        for (name, contents) in try report.files() {
            try AtomicFile.write(contents, to: "\(folder.path)/\(name)")
        }
        return Written(report: report, folder: folder, evaluatedModel: bnRecalibration ? evaluated.checkpoint : nil)
    }

    /// The policy to store with `--save-policy`: the one a goal chose (risk control first),
    /// else the one evaluated. Throws when the goal was not reached.
    public func policyToSave(_ report: EvaluationReport, evaluated policy: ExitPolicy) throws -> ExitPolicy {
        var chosen = policy
        let exits = policy.thresholds.count
        if let riskControl = report.riskControl {
            guard let threshold = riskControl.choice.threshold else {
                throw EvaluationError("--save-policy: no threshold of the sweep certifies \(riskControl.guarantee)")
            }
            chosen.thresholds = Array(repeating: Float(threshold), count: exits)
        } else if let choice = report.choices.first {
            guard let threshold = choice.threshold else {
                throw EvaluationError("--save-policy: \(choice.goal) is not reached by any threshold of the sweep")
            }
            chosen.thresholds = Array(repeating: Float(threshold), count: exits)
        }
        return chosen
    }

    /// Writes `policy` into the checkpoint file (atomically: the file is replaced, so a hard
    /// link such as last.h5 then names the new file and the epoch file keeps the old policy).
    /// The run folder is locked meanwhile, and the policy is stored only into the checkpoint it
    /// was chosen on (a training may have moved last.h5 on meanwhile).
    public func save(_ policy: ExitPolicy, evaluated: Checkpoint) throws {
        let lock = try run.lock()
        defer { withExtendedLifetime(lock) {} }
        var stored = try Checkpoint.read(from: checkpoint)
        guard stored.epoch == evaluated.epoch && stored.globalStep == evaluated.globalStep else {
            throw CheckpointError(
                file: checkpoint,
                "changed while it was evaluated (now epoch \(stored.epoch), evaluated epoch \(evaluated.epoch)): the policy was not stored; evaluate again"
            )
        }
        stored.exitPolicy = policy
        try stored.write(to: checkpoint)
    }

    /// Samples per inference batch: `batchSize`, or the largest split when that is smaller.
    private func evaluationBatch(_ reader: DatasetReader) -> Int {
        max(1, min(batchSize, reader.splitSizes.values.max() ?? 1))
    }

    /// The policy asked for, on top of the checkpoint's stored one.
    private func exitPolicy(stored: ExitPolicy, exits: Int) throws -> ExitPolicy {
        var policy = stored
        if let criterion { policy.criterion = criterion }
        if let fallback { policy.fallback = fallback }
        switch thresholds {
        case .uniform(let tau)?: policy.thresholds = Array(repeating: tau, count: exits)
        case .perExit(let values)?:
            guard values.count == exits else {
                throw EvaluationError("--thresholds gives \(values.count) values, the model has \(exits) exits")
            }
            policy.thresholds = values
        case nil: break
        }
        return policy
    }
}

/// An evaluation asked for what the checkpoint or its options cannot give, in one sentence.
public struct EvaluationError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
