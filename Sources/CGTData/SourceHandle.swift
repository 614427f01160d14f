#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file held open while `cgt prepare` reads it in pieces: a source file, or a temporary one
/// cgt spools decompressed or converted data into.
///
/// Every read goes through the one descriptor, so a source renamed over mid-way is never
/// mixed with its replacement, and its SHA-256 is of the bytes read. A source written to in
/// place is caught by `checkUnchanged()` (size and modification time against those at
/// opening), which a streamed preparation runs after its last read, before the output is
/// put in place.
final class SourceHandle {
    /// The path as the user gave it (for a temporary, the source it holds data of).
    let path: String
    let size: Int
    private let descriptor: Int32
    private let opened: stat
    private let isTemporary: Bool

    /// Opens the regular file at `path`; nil when it cannot be opened or is not regular (the
    /// reader of whole files then names the problem).
    static func openIfRegular(_ path: String) -> SourceHandle? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        var status = stat()
        guard fstat(descriptor, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else {
            close(descriptor)
            return nil
        }
        return SourceHandle(path: path, descriptor: descriptor, status: status, isTemporary: false)
    }

    /// An empty temporary file holding data of `path`, removed from its folder at once (the
    /// space is freed when the handle goes, however the process ends). Filled by `append`.
    static func temporary(holdingDataOf path: String) throws -> SourceHandle {
        let folder = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array("\(folder)/cgt-prepare-XXXXXX".utf8CString)
        let descriptor = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard descriptor >= 0 else {
            throw DatasetError(
                file: path, object: "",
                "cannot make a temporary file in \(folder) to unpack it into (\(String(cString: strerror(errno)))); set TMPDIR"
            )
        }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        return SourceHandle(path: path, descriptor: descriptor, status: stat(), isTemporary: true)
    }

    /// A temporary holding the next `count` bytes `inflater` produces, inflated a megabyte at a
    /// time and each piece handed to `body`; it holds fewer (`written`) only when the stream
    /// ends first.
    static func temporary(
        holdingDataOf path: String, inflating inflater: GzipInflater, count: Int,
        _ body: (UnsafeRawBufferPointer) -> Void = { _ in }
    ) throws -> SourceHandle {
        let spool = try temporary(holdingDataOf: path)
        let piece = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { piece.deallocate() }
        while spool.written < count {
            let wanted = min(piece.count, count - spool.written)
            let produced = try inflater.read(into: UnsafeMutableRawBufferPointer(rebasing: piece[0..<wanted]))
            let part = UnsafeRawBufferPointer(rebasing: piece[0..<produced])
            body(part)
            try spool.append(part)
            if produced < wanted { break }
        }
        return spool
    }

    private init(path: String, descriptor: Int32, status: stat, isTemporary: Bool) {
        self.path = path
        self.descriptor = descriptor
        opened = status
        size = Int(status.st_size)
        self.isTemporary = isTemporary
        written = 0
    }

    deinit {
        close(descriptor)
    }

    /// Bytes appended to a temporary so far.
    private(set) var written: Int

    /// Writes `bytes` at the end of a temporary. Wraps `pwrite`.
    func append(_ bytes: UnsafeRawBufferPointer) throws {
        precondition(isTemporary, "only a temporary is written")
        var done = 0
        while done < bytes.count {
            let count = pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(written + done))
            if count < 0 {
                if errno == EINTR { continue }
                throw DatasetError(
                    file: path, object: "",
                    "cannot write the temporary file it is unpacked into (\(String(cString: strerror(errno)))); free space or set TMPDIR"
                )
            }
            done += count
        }
        written += bytes.count
    }

    /// Fills `buffer` from `offset`. Wraps `pread`.
    func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws {
        var done = 0
        while done < buffer.count {
            let count = pread(descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if count < 0 {
                if errno == EINTR { continue }
                throw DatasetError(file: path, object: "", "cannot read (\(String(cString: strerror(errno))))")
            }
            if count == 0 { throw DatasetError(file: path, object: "", "file shrank while being read") }
            done += count
        }
    }

    /// `count` bytes from `offset`.
    func bytes(at offset: Int, count: Int) throws -> [UInt8] {
        try [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            try read(at: offset, into: UnsafeMutableRawBufferPointer(buffer))
            initialized = count
        }
    }

    /// Calls `body` with the bytes of `range`, a megabyte at a time.
    func forEachPiece(of range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let piece = UnsafeMutableRawBufferPointer.allocate(byteCount: min(1 << 20, max(1, range.count)), alignment: 64)
        defer { piece.deallocate() }
        var offset = range.lowerBound
        while offset < range.upperBound {
            let part = UnsafeMutableRawBufferPointer(rebasing: piece[0..<min(piece.count, range.upperBound - offset)])
            try read(at: offset, into: part)
            try body(UnsafeRawBufferPointer(part))
            offset += part.count
        }
    }

    /// What provenance records of the source: the SHA-256 of its bytes, read through this handle.
    func record() throws -> SourceRecord {
        var hash = SHA256()
        try forEachPiece(of: 0..<size) { hash.update($0) }
        return SourceRecord(path: path, sha256: hash.finalizeHex(), byteCount: size)
    }

    /// Refuses a source whose size or modification time is no longer what it was when opened:
    /// then some of what was read (or hashed) may be from another version of it.
    func checkUnchanged() throws {
        guard !isTemporary else { return }
        var now = stat()
        guard fstat(descriptor, &now) == 0 else {
            throw DatasetError(file: path, object: "", "cannot check it (\(String(cString: strerror(errno))))")
        }
        let change: String
        if now.st_size != opened.st_size {
            change =
                "\(now.st_size < opened.st_size ? "shrank" : "grew") from \(opened.st_size) to \(now.st_size) bytes"
        } else if now.st_mtim.tv_sec != opened.st_mtim.tv_sec || now.st_mtim.tv_nsec != opened.st_mtim.tv_nsec {
            change = "was modified"
        } else {
            return
        }
        throw DatasetError(
            file: path, object: "",
            "\(change) while cgt prepare read it, so nothing was written; prepare again once nothing writes to it")
    }
}
