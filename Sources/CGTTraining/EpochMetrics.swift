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

/// Appends epoch metrics to `metrics.jsonl`, one JSON object per line, and reads them back.
///
/// A run killed while it appends leaves a last line cut short (no newline, not JSON): readers
/// leave it out with a warning, and a resumed run drops it (it trains that epoch again). Any
/// other line that is not a record is an error naming the file and the line.
public struct MetricsLog {
    public let path: String
    private let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    public init(path: String) { self.path = path }

    /// Appends one line and flushes it to disk; a failure (a full disk) names the file.
    public func append(_ metrics: EpochMetrics) throws {
        var line = try encoder.encode(metrics)
        line.append(0x0A)
        try AtomicFile.append(line, to: path)
    }

    /// Keeps only the lines of epochs up to `epoch` (when resuming from a checkpoint of that
    /// epoch), and drops a last line cut short.
    public func truncate(afterEpoch epoch: Int) throws {
        guard FileManager.default.fileExists(atPath: path) else { return }
        var output = Data()
        for record in try Self.lines(path).records where record.metrics.epoch <= epoch {
            output.append(contentsOf: record.line)
            output.append(0x0A)
        }
        try AtomicFile.write(output, to: path)
    }

    /// The records of a metrics file (none when there is no file); `warn` is told when its last
    /// line, cut short by a killed run, is left out.
    public static func read(_ path: String, warn: (String) -> Void = { _ in }) throws -> [EpochMetrics] {
        let read = try lines(path)
        if let warning = read.warning { warn(warning) }
        return read.records.map(\.metrics)
    }

    /// Every record with its line as written; a bad line other than a last one cut short throws.
    private static func lines(_ path: String) throws -> (
        records: [(line: Data, metrics: EpochMetrics)], warning: String?
    ) {
        guard let data = FileManager.default.contents(atPath: path) else { return ([], nil) }
        let decoder = JSONDecoder()
        let lines = data.split(separator: 0x0A, omittingEmptySubsequences: false)
        var records: [(line: Data, metrics: EpochMetrics)] = []
        for (index, line) in lines.enumerated() where !line.isEmpty {
            do {
                records.append((Data(line), try decoder.decode(EpochMetrics.self, from: Data(line))))
            } catch {
                // Only the last line can lack its newline: the append a kill interrupted.
                if index == lines.count - 1 {
                    return (
                        records, "\(path): line \(index + 1) is cut short (a run killed while writing it); left out"
                    )
                }
                throw PathError(
                    location: [path, "line \(index + 1)"], problem: "not an epoch record cgt wrote (\(reason(error)))")
            }
        }
        return (records, nil)
    }

    /// What is wrong with a line, in a few words.
    private static func reason(_ error: Error) -> String {
        switch error as? DecodingError {
        case .dataCorrupted?: return "not valid JSON"
        case .keyNotFound(let key, _)?: return "no '\(key.stringValue)'"
        case .typeMismatch(_, let context)?, .valueNotFound(_, let context)?:
            return "'\(context.codingPath.map(\.stringValue).joined(separator: "."))' has the wrong type"
        default: return "\(error)"
        }
    }
}
