import Foundation

/// An array named on the command line: a `.npy` file, or one array of a `.npz` archive.
///
/// `X.npy` is the file; `data.npz:X` is the array `X` of `data.npz`; `data.npz` alone is its
/// only array (an archive with several must name one).
public struct NumPyInput {
    public let array: NumericArray
    public let source: SourceFile
    /// The archive member the array came from, or nil for a `.npy` file.
    public let member: String?

    /// Where errors and provenance should point: the file, plus the member if any.
    public var location: String { member.map { "\(source.path):\($0)" } ?? source.path }

    public static func load(_ specification: String) throws -> NumPyInput {
        let (path, member) = parse(specification)
        let source = try SourceFile.read(path)
        guard isArchive(path: path, start: source.bytes.prefix(4)) else {
            guard member == nil else {
                throw DatasetError(file: path, object: "", "is not a .npz archive, so it has no array '\(member!)'")
            }
            return NumPyInput(array: try NPYReader.read(source.bytes, file: path), source: source, member: nil)
        }
        let archive = try NPZArchive(source)
        let (entry, name) = try NPZArchive.member(named: member, in: archive.members, path: path)
        return NumPyInput(
            array: try NPYReader.read(try archive.contents(of: entry), file: path, object: entry.name), source: source,
            member: name)
    }

    /// The file and the archive member, if any, that `specification` names.
    static func parse(_ specification: String) -> (path: String, member: String?) {
        guard !FileManager.default.fileExists(atPath: specification),
            let colon = specification.lastIndex(of: ":"), specification[..<colon].hasSuffix(".npz")
        else { return (specification, nil) }
        return (String(specification[..<colon]), String(specification[specification.index(after: colon)...]))
    }

    /// Whether the file at `path`, which begins with `start`, is read as a `.npz` archive.
    static func isArchive(path: String, start: some Collection<UInt8>) -> Bool {
        start.starts(with: [0x50, 0x4B, 0x03, 0x04]) || start.starts(with: [0x50, 0x4B, 0x05, 0x06])
            || path.hasSuffix(".npz")
    }
}
