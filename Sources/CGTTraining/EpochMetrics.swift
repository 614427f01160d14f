import CGTCheckpoint
import CGTEvaluation
import CGTFiles
import CGTJob
import Foundation

/// One line of `metrics.jsonl`: what an epoch of training did, per exit.
public struct EpochMetrics: Codable, Equatable, Sendable {
    public var epoch: Int
    public var globalStep: Int
    public var learningRate: Double
    /// Mean cross-entropy of each exit over the epoch's samples (unweighted).
    public var loss: [Double]
    /// Mean lambda_e(i) CE_e(i): what each exit contributed to the optimised loss.
    public var weightedLoss: [Double]
    /// Mean gate lambda_e(i): how much each exit learned from.
    public var gateMean: [Double]
    /// Training accuracy of each exit (dropout on, batch statistics).
    public var trainAccuracy: [Double]
    public var samples: Int
    public var seconds: Double
    public var samplesPerSecond: Double
    /// Early-exit test evaluation, on epochs where `eval.every_epochs` asks for one.
    public var evaluation: RoutingStatistics?
    /// The same on the validation split, when the data has one.
    public var validation: RoutingStatistics?
    /// Bytes of the dataset file the epoch's training rows took, summed over ranks: the stored
    /// (compressed) size of every chunk read, labels included.
    public var dataBytesRead: Int64?
    /// The same chunks' bytes after decompression (at the stored type: uint8 features count 1
    /// byte each), summed over ranks; equal to `dataBytesRead` for an uncompressed file.
    public var dataBytesDecompressed: Int64?
    /// Seconds a rank waited for the epoch's rows (reading, decompressing, converting,
    /// checking), the mean over ranks: the loop trains on nothing meanwhile.
    public var dataStallSeconds: Double?
    /// The first epoch of a run only: seconds the run spent reading (and checking) that epoch's
    /// rows before training started, the mean over ranks; they are read before the run writes
    /// anything, so that data it refuses leaves no run folder. Not part of `seconds` or the stall.
    public var dataStartupSeconds: Double?

    enum CodingKeys: String, CodingKey {
        case epoch
        case globalStep = "global_step"
        case learningRate = "lr"
        case loss
        case weightedLoss = "weighted_loss"
        case gateMean = "gate_mean"
        case trainAccuracy = "train_accuracy"
        case samples, seconds
        case samplesPerSecond = "samples_per_second"
        case evaluation, validation
        case dataBytesRead = "data_bytes_read"
        case dataBytesDecompressed = "data_bytes_decompressed"
        case dataStallSeconds = "data_stall_seconds"
        case dataStartupSeconds = "data_startup_seconds"
    }
}

extension EpochMetrics: EpochRecord {}

/// A run's `metrics.jsonl` of training's epoch records.
public typealias MetricsLog = EpochLog<EpochMetrics>
