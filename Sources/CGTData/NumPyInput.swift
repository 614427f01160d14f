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
        var path = specification
        var member: String?
        if !FileManager.default.fileExists(atPath: specification),
            let colon = specification.lastIndex(of: ":"), specification[..<colon].hasSuffix(".npz")
        {
            path = String(specification[..<colon])
            member = String(specification[specification.index(after: colon)...])
        }
        let source = try SourceFile.read(path)
        let isZip =
            source.bytes.starts(with: [0x50, 0x4B, 0x03, 0x04]) || source.bytes.starts(with: [0x50, 0x4B, 0x05, 0x06])
        guard isZip || path.hasSuffix(".npz") else {
            guard member == nil else {
                throw DatasetError(file: path, object: "", "is not a .npz archive, so it has no array '\(member!)'")
            }
            return NumPyInput(array: try NPYReader.read(source.bytes, file: path), source: source, member: nil)
        }
        let archive = try NPZArchive(source)
        let name: String
        if let member {
            name = member
        } else {
            guard archive.arrayNames.count == 1 else {
                throw DatasetError(
                    file: path, object: "",
                    "holds \(archive.arrayNames.count) arrays (\(archive.arrayNames.joined(separator: ", "))); name one as \(path):NAME"
                )
            }
            name = archive.arrayNames[0]
        }
        return NumPyInput(array: try archive.array(named: name), source: source, member: name)
    }
}
