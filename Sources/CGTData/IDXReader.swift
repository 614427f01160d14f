import CGTFiles

/// Reads IDX files (the format of MNIST and Fashion-MNIST), plain or gzip-compressed.
///
/// An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of
/// dimensions), one big-endian 32-bit extent per dimension, then the elements big-endian in C
/// order. The header fixes the data size, so the reader allocates exactly that and checks the
/// file holds exactly that: a truncated or padded file is an error, not a short array.
public enum IDXReader {
    /// Type codes of the IDX header and the element types they denote.
    static let elementTypes: [UInt8: NumericArray.ElementType] = [
        0x08: .uint8, 0x09: .int8, 0x0B: .int16, 0x0C: .int32, 0x0D: .float32, 0x0E: .float64,
    ]

    /// Reads the IDX array in `source` (gzip-compressed when it starts with gzip's magic number).
    public static func read(_ source: SourceFile) throws -> NumericArray {
        let path = source.path
        var reader: ByteReader =
            GzipInflater.isGzip(source.bytes)
            ? .gzip(try GzipInflater(source.bytes, format: .gzip, file: path))
            : .plain(source.bytes, offset: 0)
        let (type, shape, byteCount) = try header(&reader, path: path, fileSize: source.bytes.count)
        // The data, then cgt's float copy of it: a header may announce more than memory holds.
        if let refusal = MemoryBudget.refusal([byteCount, 1 + 4 / type.size], elementSize: 1) {
            throw DatasetError(file: path, object: "", "dimensions \(shape) of \(type): reading them \(refusal)")
        }
        let data = try reader.take(byteCount, path: path, what: "the data of dimensions \(shape)")
        if case .gzip(let inflater) = reader {
            try inflater.expectEnd(afterCount: byteCount)
        }
        return NumericArray(shape: shape, elementType: type, isBigEndian: true, bytes: data)
    }

    /// The IDX array in the file at `path` with its rows (first axis) read in place, or from a
    /// temporary file the data of a gzip file is unpacked into a megabyte at a time; nil when
    /// the file cannot be opened (reading it whole names the problem). Refuses what `read`
    /// refuses, and what `check` refuses of the header's shape and type, before any data is read.
    static func open(
        _ path: String, blockBytes: Int, check: ([Int], NumericArray.ElementType) throws -> Void = { _, _ in }
    ) throws -> NPYFile? {
        guard let source = SourceHandle.openIfRegular(path) else { return nil }
        var reader: ByteReader =
            GzipInflater.isGzip(try source.bytes(at: 0, count: min(2, source.size)))
            ? .gzip(try GzipInflater(source, range: 0..<source.size, format: .gzip))
            : .file(source, offset: 0)
        let (type, shape, byteCount) = try header(&reader, path: path, fileSize: source.size)
        try check(shape, type)
        switch reader {
        case .plain: preconditionFailure("a file is not read whole")
        case .file(_, let offset):
            return NPYFile(
                source: source, data: source, location: path, shape: shape, elementType: type, isBigEndian: true,
                fortranOrder: false, dataStart: offset, blockBytes: blockBytes)
        case .gzip(let inflater):
            let data = try SourceHandle.temporary(holdingDataOf: path, inflating: inflater, count: byteCount)
            guard data.written == byteCount else {
                throw DatasetError(
                    file: path, object: "",
                    "is truncated: its decompressed data ends before the data of dimensions \(shape)")
            }
            try inflater.expectEnd(afterCount: byteCount)
            return NPYFile(
                source: source, data: data, location: path, shape: shape, elementType: type, isBigEndian: true,
                fortranOrder: false, dataStart: 0, blockBytes: blockBytes)
        }
    }

    /// Reads and checks the magic number and dimensions; returns the element type, the shape
    /// and the bytes of data that must follow (checked against a plain file's size, and
    /// against what a gzip file of `fileSize` bytes can hold).
    private static func header(_ reader: inout ByteReader, path: String, fileSize: Int) throws -> (
        NumericArray.ElementType, [Int], Int
    ) {
        func fail(_ problem: String) -> DatasetError { DatasetError(file: path, object: "", problem) }
        let magic = try reader.take(4, path: path, what: "the IDX magic number")
        guard magic[0] == 0, magic[1] == 0, let type = elementTypes[magic[2]], magic[3] > 0 else {
            let hex = magic.map { String($0, radix: 16).leftPadded(to: 2) }.joined(separator: " ")
            throw fail("not an IDX file: magic bytes \(hex), expected 00 00 <type 08/09/0b/0c/0d/0e> <dimensions>")
        }
        let dimensions = Int(magic[3])
        let header = try reader.take(
            4 * dimensions, path: path, what: "the \(dimensions) dimensions its magic number announces")
        let shape = (0..<dimensions).map { axis in
            header[(axis * 4)..<(axis * 4 + 4)].reduce(0) { $0 << 8 | Int($1) }
        }
        var byteCount = type.size
        for extent in shape {
            let (product, overflow) = byteCount.multipliedReportingOverflow(by: extent)
            guard !overflow else { throw fail("dimensions \(shape) describe more data than can exist") }
            byteCount = product
        }
        switch reader {
        case .plain(_, let offset), .file(_, let offset):
            guard fileSize - offset == byteCount else {
                throw fail(
                    "holds \(fileSize - offset) bytes of data after its header, but dimensions \(shape) of \(type) need \(byteCount)"
                )
            }
        case .gzip:
            let limit = fileSize * GzipInflater.maximumExpansion
            guard byteCount <= limit else {
                throw fail(
                    "dimensions \(shape) need \(byteCount) bytes, more than a \(fileSize)-byte gzip file can hold")
            }
        }
        return (type, shape, byteCount)
    }

    /// The bytes of a plain file (in memory, or read from its file), or a gzip stream
    /// decompressed on demand.
    private enum ByteReader {
        case plain([UInt8], offset: Int)
        case file(SourceHandle, offset: Int)
        case gzip(GzipInflater)

        mutating func take(_ count: Int, path: String, what: String) throws -> [UInt8] {
            switch self {
            case .plain(let bytes, let offset):
                guard bytes.count - offset >= count else {
                    throw DatasetError(file: path, object: "", "is truncated: it ends before \(what)")
                }
                self = .plain(bytes, offset: offset + count)
                return Array(bytes[offset..<(offset + count)])
            case .file(let source, let offset):
                guard source.size - offset >= count else {
                    throw DatasetError(file: path, object: "", "is truncated: it ends before \(what)")
                }
                self = .file(source, offset: offset + count)
                return try source.bytes(at: offset, count: count)
            case .gzip(let inflater):
                return try [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
                    initialized = try inflater.read(into: UnsafeMutableRawBufferPointer(buffer))
                    guard initialized == count else {
                        throw DatasetError(
                            file: path, object: "", "is truncated: its decompressed data ends before \(what)")
                    }
                }
            }
        }
    }
}
