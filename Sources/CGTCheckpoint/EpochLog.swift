import CGTFiles
import Foundation

/// One line of a run's `metrics.jsonl`: the run folder knows the epoch of each line and
/// nothing else (training writes `EpochMetrics`).
public protocol EpochRecord: Codable {
    var epoch: Int { get }
}

/// Appends epoch records to `metrics.jsonl`, one JSON object per line, and reads them back.
///
/// A run killed while it appends leaves a last line cut short (no newline, not JSON): readers
/// leave it out with a warning, and a resumed run drops it (it trains that epoch again). Any
/// other line that is not a record is an error naming the file and the line.
public struct EpochLog<Record: EpochRecord> {
    public let path: String
    private let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    public init(path: String) { self.path = path }

    /// Appends one line and flushes it to disk; a failure (a full disk) names the file.
    public func append(_ metrics: Record) throws {
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
    public static func read(_ path: String, warn: (String) -> Void = { _ in }) throws -> [Record] {
        let read = try lines(path)
        if let warning = read.warning { warn(warning) }
        return read.records.map(\.metrics)
    }

    /// Every record with its line as written; a bad line other than a last one cut short throws.
    private static func lines(_ path: String) throws -> (
        records: [(line: Data, metrics: Record)], warning: String?
    ) {
        guard let data = FileManager.default.contents(atPath: path) else { return ([], nil) }
        let decoder = JSONDecoder()
        let lines = data.split(separator: 0x0A, omittingEmptySubsequences: false)
        var records: [(line: Data, metrics: Record)] = []
        for (index, line) in lines.enumerated() where !line.isEmpty {
            do {
                records.append((Data(line), try decoder.decode(Record.self, from: Data(line))))
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
