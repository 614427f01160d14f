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
        func fail(_ problem: String) -> DatasetError { DatasetError(file: path, object: "", problem) }
        var reader: ByteReader =
            GzipInflater.isGzip(source.bytes)
            ? .gzip(try GzipInflater(source.bytes, format: .gzip, file: path))
            : .plain(source.bytes, offset: 0)

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
        case .plain(let bytes, let offset):
            guard bytes.count - offset == byteCount else {
                throw fail(
                    "holds \(bytes.count - offset) bytes of data after its header, but dimensions \(shape) of \(type) need \(byteCount)"
                )
            }
        case .gzip:
            let limit = source.bytes.count * GzipInflater.maximumExpansion
            guard byteCount <= limit else {
                throw fail(
                    "dimensions \(shape) need \(byteCount) bytes, more than a \(source.bytes.count)-byte gzip file can hold"
                )
            }
        }
        // The data, then cgt's float copy of it: a header may announce more than memory holds.
        if let refusal = MemoryBudget.refusal([byteCount, 1 + 4 / type.size], elementSize: 1) {
            throw fail("dimensions \(shape) of \(type): reading them \(refusal)")
        }
        let data = try reader.take(byteCount, path: path, what: "the data of dimensions \(shape)")
        if case .gzip(let inflater) = reader {
            try inflater.expectEnd(afterCount: byteCount)
        }
        return NumericArray(shape: shape, elementType: type, isBigEndian: true, bytes: data)
    }

    /// The bytes of a plain file, or a gzip stream decompressed on demand.
    private enum ByteReader {
        case plain([UInt8], offset: Int)
        case gzip(GzipInflater)

        mutating func take(_ count: Int, path: String, what: String) throws -> [UInt8] {
            switch self {
            case .plain(let bytes, let offset):
                guard bytes.count - offset >= count else {
                    throw DatasetError(file: path, object: "", "is truncated: it ends before \(what)")
                }
                self = .plain(bytes, offset: offset + count)
                return Array(bytes[offset..<(offset + count)])
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
