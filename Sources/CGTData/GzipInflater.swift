import CZlib

/// Decompresses gzip (RFC 1952) or raw deflate (RFC 1951) bytes, held in memory or read from a
/// part of a file a megabyte at a time, with zlib, straight into the caller's buffer.
///
/// Readers pull exactly the bytes a header announced, so nothing is allocated on the word of
/// a compressed stream alone. A truncated stream, a corrupt one (including a gzip CRC or
/// length mismatch, which zlib checks at the end of each member) and trailing bytes that are
/// not another gzip member are errors naming the file. Concatenated gzip members are read as
/// one stream, as `gunzip` does.
public final class GzipInflater {
    public enum Format: Sendable {
        /// gzip members (`.gz`), checked against their CRC-32 and length trailers.
        case gzip
        /// A bare deflate stream, as in a zip member.
        case rawDeflate
    }

    /// The most a deflate stream can expand (zlib's technical report: 1032:1), for
    /// refusing sizes no stream of a given length could produce.
    public static let maximumExpansion = 1032

    /// The compressed bytes: in memory, or this range of a file.
    private enum Input {
        case bytes
        case file(SourceHandle, Range<Int>)
    }

    private let input: Input
    private let inputCount: Int
    /// The part of the input in memory, which starts `bufferStart` bytes into it.
    private var buffer: [UInt8]
    private var bufferStart = 0
    private let format: Format
    private let file: String
    private let object: String
    private var stream = z_stream()
    private var consumed = 0
    private var ended = false

    /// - Parameters:
    ///   - file, object: named in errors (`object` is e.g. a zip member, or empty).
    public convenience init(_ input: [UInt8], format: Format, file: String, object: String = "") throws {
        try self.init(input: .bytes, buffer: input, count: input.count, format: format, file: file, object: object)
    }

    /// Inflates `range` of the file `source` reads.
    convenience init(_ source: SourceHandle, range: Range<Int>, format: Format, object: String = "") throws {
        try self.init(
            input: .file(source, range), buffer: [], count: range.count, format: format, file: source.path,
            object: object)
    }

    private init(input: Input, buffer: [UInt8], count: Int, format: Format, file: String, object: String) throws {
        self.input = input
        self.buffer = buffer
        inputCount = count
        self.format = format
        self.file = file
        self.object = object
        let status = czlib_inflate_init2(&stream, format == .gzip ? 15 + 16 : -15)
        guard status == Z_OK else {
            throw DatasetError(file: file, object: object, "zlib inflateInit2 failed (\(status))")
        }
    }

    deinit {
        inflateEnd(&stream)
    }

    /// The whole stream, which must decompress to exactly `expectedCount` bytes.
    public static func inflate(_ input: [UInt8], format: Format, expectedCount: Int, file: String, object: String = "")
        throws -> [UInt8]
    {
        let inflater = try GzipInflater(input, format: format, file: file, object: object)
        let output = try [UInt8](unsafeUninitializedCapacity: expectedCount) { buffer, initialized in
            initialized = try inflater.read(into: UnsafeMutableRawBufferPointer(buffer))
            guard initialized == expectedCount else {
                throw DatasetError(
                    file: file, object: object, "decompresses to \(initialized) bytes, expected \(expectedCount)")
            }
        }
        try inflater.expectEnd(afterCount: expectedCount)
        return output
    }

    /// Fills `buffer` and returns its size, or returns less only when the stream has ended.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let base = buffer.baseAddress, !buffer.isEmpty else { return 0 }
        var produced = 0
        while produced < buffer.count && !ended {
            try refillIfConsumed()
            let before = Int(stream.total_out)
            let status: Int32 = self.buffer.withUnsafeBytes { source in
                let offset = consumed - bufferStart
                stream.next_in = UnsafeMutablePointer(
                    mutating: source.baseAddress.map { $0.assumingMemoryBound(to: UInt8.self) + offset })
                stream.avail_in = UInt32(min(source.count - offset, Int(UInt32.max)))
                stream.next_out = (base + produced).assumingMemoryBound(to: UInt8.self)
                stream.avail_out = UInt32(min(buffer.count - produced, Int(UInt32.max)))
                let availableBefore = Int(stream.avail_in)
                let status = CZlib.inflate(&stream, Z_NO_FLUSH)
                consumed += availableBefore - Int(stream.avail_in)
                return status
            }
            produced += Int(stream.total_out) - before
            switch status {
            case Z_OK:
                continue
            case Z_STREAM_END:
                try startNextMemberOrEnd()
            case Z_BUF_ERROR where consumed == inputCount:
                throw fail(
                    inputCount == 0
                        ? "is empty" : "is truncated: the \(formatName) stream ends early, after \(consumed) bytes")
            case Z_DATA_ERROR:
                throw fail("is not valid \(formatName) data (\(zlibMessage))")
            case Z_MEM_ERROR:
                throw fail("zlib ran out of memory")
            default:
                throw fail("zlib inflate failed with status \(status) (\(zlibMessage))")
            }
        }
        return produced
    }

    /// Reads the next megabyte of a file's input once the buffer is used up.
    private func refillIfConsumed() throws {
        guard case .file(let source, let range) = input, consumed == bufferStart + buffer.count, consumed < inputCount
        else { return }
        bufferStart = consumed
        buffer = try source.bytes(at: range.lowerBound + consumed, count: min(1 << 20, inputCount - consumed))
    }

    /// Up to two bytes of input from where inflation stopped.
    private func nextTwoBytes() throws -> [UInt8] {
        let count = min(2, inputCount - consumed)
        switch input {
        case .bytes: return Array(buffer[consumed..<(consumed + count)])
        case .file(let source, let range): return try source.bytes(at: range.lowerBound + consumed, count: count)
        }
    }

    /// Checks that the stream ends here: no more decompressed bytes, no unread input.
    public func expectEnd(afterCount count: Int) throws {
        var probe: UInt8 = 0
        let extra = try withUnsafeMutableBytes(of: &probe) { try read(into: $0) }
        guard extra == 0 else { throw fail("holds more than the \(count) bytes its header announces") }
    }

    /// After a member ends: a following gzip member restarts the stream, anything else is an error.
    private func startNextMemberOrEnd() throws {
        guard format == .gzip, consumed < inputCount else {
            ended = true
            return
        }
        guard try nextTwoBytes() == [0x1f, 0x8b] else {
            throw fail("has \(inputCount - consumed) bytes of trailing data after the gzip stream")
        }
        let status = inflateReset(&stream)
        guard status == Z_OK else { throw fail("zlib inflateReset failed (\(status))") }
    }

    private var formatName: String { format == .gzip ? "gzip" : "deflate" }

    private var zlibMessage: String { stream.msg.map { String(cString: $0) } ?? "no detail" }

    private func fail(_ problem: String) -> DatasetError { DatasetError(file: file, object: object, problem) }
}

extension GzipInflater {
    /// Whether `bytes` begin with the gzip magic number 1f 8b.
    public static func isGzip(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b
    }
}
