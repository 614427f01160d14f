import CGTCheckpoint
import CGTEvaluation
import CGTModel
import Foundation

/// What rank 0 records as training goes: a line of `metrics.jsonl` per epoch and, with
/// `logging.tensorboard`, TensorBoard scalars per step and per epoch.
final class TrainingRecorder {
    private let metrics: MetricsLog
    private let tensorBoard: TensorBoardLog?
    /// The per-step tags, made once.
    private let stepTags: (loss: [String], gate: [String])

    init(run: RunDirectory, tensorBoard: Bool, exits: Int) throws {
        metrics = MetricsLog(path: run.metricsFile)
        self.tensorBoard = tensorBoard ? try TensorBoardLog(folder: run.tensorBoardFolder) : nil
        stepTags = ((1...exits).map { "train/loss_exit\($0)" }, (1...exits).map { "train/gate_exit\($0)" })
    }

    /// The epoch's line, and its means and held-out metrics in the TensorBoard file at the
    /// epoch's last step.
    func epoch(_ metrics: EpochMetrics, test: RoutingStatistics?, validation: RoutingStatistics?) throws {
        try self.metrics.append(metrics)
        guard let tensorBoard else { return }
        var values: [(tag: String, value: Double)] = [("epoch/samples_per_second", metrics.samplesPerSecond)]
        for e in metrics.loss.indices {
            values += [
                ("epoch/loss_exit\(e + 1)", metrics.loss[e]), ("epoch/gate_exit\(e + 1)", metrics.gateMean[e]),
                ("epoch/train_accuracy_exit\(e + 1)", metrics.trainAccuracy[e]),
            ]
        }
        for (split, statistics) in [
            ("test", metrics.evaluation ?? test), ("validation", metrics.validation ?? validation),
        ] {
            guard let statistics else { continue }
            values += [
                ("\(split)/accuracy", statistics.accuracy), ("\(split)/macro_f1", statistics.macroF1),
                ("\(split)/relative_cost", statistics.relativeCost),
            ]
            for (e, fraction) in statistics.exitFractions.enumerated() {
                values.append(("\(split)/exit\(e + 1)_fraction", fraction))
            }
        }
        tensorBoard.scalars(values, step: metrics.globalStep)
        try tensorBoard.flush()
    }

    /// One step's loss and mean gate per exit (rank 0's part of the batch), learning rate and samples/s.
    func step(
        _ statistics: ExitObjective.Statistics, step: Int, batch: Int, globalCount: Int, learningRate: Float,
        started: DispatchTime
    ) {
        guard let tensorBoard else { return }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
        let n = Double(max(batch, 1))
        var values: [(tag: String, value: Double)] = [
            ("train/learning_rate", Double(learningRate)),
            ("train/samples_per_second", Double(globalCount) / max(seconds, 1e-9)),
        ]
        for e in statistics.loss.indices {
            values += [(stepTags.loss[e], statistics.loss[e] / n), (stepTags.gate[e], statistics.gate[e] / n)]
        }
        tensorBoard.scalars(values, step: step)
    }

    /// Writes what the TensorBoard file holds in memory (before the run stops).
    func flush() { try? tensorBoard?.flush() }
}
