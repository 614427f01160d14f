import Foundation

/// Where a prepared file came from: enough to tell whether two files were made from the same
/// bytes, by the same command, with the same cgt.
public struct Provenance: Sendable {
    /// The `cgt prepare` subcommand: "fashion-mnist", "hsi", "npy" or "csv".
    public var kind: String
    public var sources: [SourceRecord]
    public var commandLine: String
    public var toolVersion: String
    public var createdAt: Date

    public init(
        kind: String, sources: [SourceRecord], commandLine: String, toolVersion: String, createdAt: Date = Date()
    ) {
        self.kind = kind
        self.sources = sources
        self.commandLine = commandLine
        self.toolVersion = toolVersion
        self.createdAt = createdAt
    }

    /// The attribute listing the source files' paths.
    public static let sourceFilesAttribute = "source_files"

    /// The source of `dataset` that is the file at `path` (the same file, by device and inode), if any.
    public static func source(of dataset: PreparedDataset, at path: String) -> String? {
        source(of: dataset.content, at: path)
    }

    /// The input of `dataset` that is the file at `path` (the same device and inode), if any.
    public static func source(of dataset: DatasetContent, at path: String) -> String? {
        guard case .strings(let inputs)? = dataset.attributes[sourceFilesAttribute] else { return nil }
        var target = stat()
        guard stat(path, &target) == 0 else { return nil }
        return inputs.first { input in
            var status = stat()
            return stat(input, &status) == 0 && status.st_dev == target.st_dev && status.st_ino == target.st_ino
        }
    }

    /// The file attributes that record it (documented in `hdf5_data/README.md`).
    public var attributes: [String: DatasetAttributeValue] {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return [
            "source_kind": .string(kind),
            Self.sourceFilesAttribute: .strings(sources.map(\.path)),
            "source_sha256": .strings(sources.map(\.sha256)),
            "source_bytes": .ints(sources.map(\.byteCount)),
            "command_line": .string(commandLine),
            "cgt_version": .string(toolVersion),
            "created_at": .string(formatter.string(from: createdAt)),
        ]
    }
}
