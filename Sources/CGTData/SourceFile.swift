import CGTFiles

#if canImport(Glibc)
import Glibc
private let systemRead = Glibc.read
#elseif canImport(Darwin)
import Darwin
private let systemRead = Darwin.read
#endif

/// A raw input file read whole into memory, with the SHA-256 that provenance records.
///
/// Readers parse from these bytes rather than from the file, so what is hashed is exactly what
/// was parsed. Every failure names the file.
public struct SourceFile {
    /// The path as the user gave it.
    public let path: String
    public let bytes: [UInt8]
    /// SHA-256 of `bytes`, lowercase hexadecimal.
    public let sha256: String

    public init(path: String, bytes: [UInt8]) {
        self.path = path
        self.bytes = bytes
        sha256 = SHA256.hexDigest(of: bytes)
    }

    /// Reads the regular file at `path`.
    public static func read(_ path: String) throws -> SourceFile {
        SourceFile(path: path, bytes: try readBytes(path))
    }

    public var record: SourceRecord { SourceRecord(path: path, sha256: sha256, byteCount: bytes.count) }

    /// Reads a whole regular file; the size comes from `fstat`, so nothing is allocated for a
    /// file that is not there, not regular, or not readable.
    static func readBytes(_ path: String) throws -> [UInt8] {
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { throw DatasetError(file: path, object: "", systemProblem(errno, opening: true)) }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            throw DatasetError(file: path, object: "", systemProblem(errno, opening: false))
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            throw DatasetError(file: path, object: "", "is not a regular file")
        }
        let size = Int(status.st_size)
        // Read whole, then converted to float32 (up to four bytes per byte read).
        if let refusal = MemoryBudget.refusal([size, 5], elementSize: 1) {
            throw DatasetError(
                file: path, object: "", "is \(MemoryBudget.describe(size)): reading and converting it \(refusal)")
        }
        return try [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            while initialized < size {
                let count = systemRead(descriptor, buffer.baseAddress! + initialized, size - initialized)
                if count < 0 {
                    if errno == EINTR { continue }
                    throw DatasetError(file: path, object: "", systemProblem(errno, opening: false))
                }
                if count == 0 { throw DatasetError(file: path, object: "", "file shrank while being read") }
                initialized += count
            }
        }
    }

    /// SHA-256 of the regular file at `path`, read in blocks (a dataset of gigabytes is hashed
    /// in constant memory): the identity of the data a run trained on or an evaluation measured.
    public static func sha256(ofFileAt path: String) throws -> String {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw DatasetError(file: path, object: "", systemProblem(errno, opening: true)) }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else {
            throw DatasetError(file: path, object: "", "is not a regular file")
        }
        var hash = SHA256()
        let block = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { block.deallocate() }
        while true {
            let count = systemRead(descriptor, block.baseAddress!, block.count)
            if count < 0 {
                if errno == EINTR { continue }
                throw DatasetError(file: path, object: "", systemProblem(errno, opening: false))
            }
            if count == 0 { break }
            hash.update(UnsafeRawBufferPointer(rebasing: block[..<count]))
        }
        return hash.finalizeHex()
    }

    private static func systemProblem(_ code: Int32, opening: Bool) -> String {
        switch code {
        case ENOENT: return "no such file"
        case EACCES: return "permission denied"
        case EISDIR: return "is a directory, not a file"
        default: return "cannot \(opening ? "open" : "read") (\(String(cString: strerror(code))))"
        }
    }
}

/// What a prepared file records about one of its source files.
public struct SourceRecord: Equatable, Sendable {
    public let path: String
    public let sha256: String
    public let byteCount: Int

    public init(path: String, sha256: String, byteCount: Int) {
        self.path = path
        self.sha256 = sha256
        self.byteCount = byteCount
    }
}
