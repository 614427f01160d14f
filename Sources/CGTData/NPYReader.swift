/// Reads NumPy `.npy` arrays (format versions 1, 2 and 3).
///
/// The header is a Python dict literal giving `descr` (e.g. `'<u2'`), `fortran_order` and
/// `shape`. Every claim in it is checked against the bytes that follow before anything is
/// allocated from it: a header that announces more data than the file holds is an error, not
/// a huge allocation. Fortran-order arrays are transposed to C order, so every `NumericArray`
/// is row-major whatever order the file used.
public enum NPYReader {
    static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)

    /// Reads the array in `bytes`; `file` and `object` (a `.npz` member, or empty) name it in errors.
    public static func read(_ bytes: [UInt8], file: String, object: String = "") throws -> NumericArray {
        let fail = { (problem: String) in DatasetError(file: file, object: object, problem) }
        let (header, dataStart) = try Self.header(bytes, fileSize: bytes.count, fail: fail)
        var data = Array(bytes[dataStart...])
        if header.fortranOrder && header.shape.count > 1 {
            data = transposeFortranToC(data, shape: header.shape, elementSize: header.elementType.size)
        }
        return NumericArray(
            shape: header.shape, elementType: header.elementType, isBigEndian: header.isBigEndian, bytes: data)
    }

    /// Where the header dict of a `.npy` file lies, from its first `preambleSize` bytes (all of
    /// a shorter file).
    static func headerRange(_ bytes: [UInt8], fail: (String) -> DatasetError) throws -> Range<Int> {
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else {
            throw fail("not a .npy file: it does not start with \\x93NUMPY")
        }
        let major = bytes[6]
        switch major {
        case 1:
            return 10..<(10 + (Int(bytes[8]) | Int(bytes[9]) << 8))
        case 2, 3:
            guard bytes.count >= 12 else { throw fail("truncated .npy header") }
            return 12..<(12 + (0..<4).reduce(0) { $0 | Int(bytes[8 + $1]) << (8 * $1) })
        default:
            throw fail(".npy format version \(major).\(bytes[7]) is not supported (cgt reads 1.0, 2.0 and 3.0)")
        }
    }

    /// Bytes that hold a `.npy` file's magic, version and header length.
    static let preambleSize = 12

    /// The header of a `.npy` file of `fileSize` bytes and the offset of its data, every claim
    /// checked against the size; `bytes` is the file or at least its first `headerRange` bytes.
    static func header(_ bytes: [UInt8], fileSize: Int, fail: (String) -> DatasetError) throws -> (
        header: NPYHeader, dataStart: Int
    ) {
        let range = try headerRange(bytes, fail: fail)
        guard range.count <= fileSize - range.lowerBound else {
            throw fail(
                ".npy header claims \(range.count) bytes but the file has \(fileSize - range.lowerBound) after the preamble"
            )
        }
        precondition(bytes.count >= range.upperBound, "the header's bytes were not read")
        let header = try NPYHeader(parsing: String(decoding: bytes[range], as: UTF8.self), fail: fail)

        var byteCount = header.elementType.size
        for extent in header.shape {
            let (product, overflow) = byteCount.multipliedReportingOverflow(by: extent)
            guard !overflow else { throw fail("shape \(header.shape) describes more data than can exist") }
            byteCount = product
        }
        let available = fileSize - range.upperBound
        guard available == byteCount else {
            let verb = available < byteCount ? "only has" : "has"
            throw fail(
                "shape \(header.shape) of \(header.descr) needs \(byteCount) bytes of data but the file \(verb) \(available)"
            )
        }
        return (header, range.upperBound)
    }

    /// Reorders the elements of a Fortran-order (column-major) array of `shape` into C order.
    ///
    /// Element (i0, ..., ik) is at Fortran offset i0 + d0 * (i1 + d1 * (...)); the destination
    /// is walked in C order with an odometer over the indices, keeping the source offset as a
    /// running sum, so each element costs one load and one store.
    static func transposeFortranToC(_ source: [UInt8], shape: [Int], elementSize: Int) -> [UInt8] {
        switch elementSize {
        case 1: return transpose(source, shape: shape, as: UInt8.self)
        case 2: return transpose(source, shape: shape, as: UInt16.self)
        case 4: return transpose(source, shape: shape, as: UInt32.self)
        default: return transpose(source, shape: shape, as: UInt64.self)
        }
    }

    private static func transpose<T: FixedWidthInteger>(_ source: [UInt8], shape: [Int], as type: T.Type) -> [UInt8] {
        let count = shape.reduce(1, *)
        var fortranStrides = [Int](repeating: 1, count: shape.count)
        for axis in 1..<shape.count { fortranStrides[axis] = fortranStrides[axis - 1] * shape[axis - 1] }
        var result = [UInt8](repeating: 0, count: source.count)
        guard count > 0 else { return result }
        source.withUnsafeBytes { input in
            result.withUnsafeMutableBytes { output in
                let from = input.bindMemory(to: T.self)
                let to = output.bindMemory(to: T.self)
                let last = shape.count - 1
                let innerExtent = shape[last]
                let innerStride = fortranStrides[last]
                var index = [Int](repeating: 0, count: shape.count)
                var offset = 0
                var destination = 0
                while destination < count {
                    var sourceOffset = offset
                    for _ in 0..<innerExtent {
                        to[destination] = from[sourceOffset]
                        destination += 1
                        sourceOffset += innerStride
                    }
                    var axis = last - 1
                    while axis >= 0 {
                        index[axis] += 1
                        offset += fortranStrides[axis]
                        if index[axis] < shape[axis] { break }
                        offset -= fortranStrides[axis] * shape[axis]
                        index[axis] = 0
                        axis -= 1
                    }
                }
            }
        }
        return result
    }
}

/// The parsed header dict of a `.npy` file.
struct NPYHeader {
    var descr: String
    var elementType: NumericArray.ElementType
    var isBigEndian: Bool
    var fortranOrder: Bool
    var shape: [Int]

    /// Parses `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`, strictly enough to
    /// refuse anything else: a missing key, a structured or object dtype, a negative extent.
    init(parsing text: String, fail: (String) -> DatasetError) throws {
        var parser = PythonLiteralParser(text: Array(text.utf8))
        guard case .dict(let entries)? = try? parser.parseValue() else {
            throw fail("bad .npy header: expected a dict literal, got \(text.trimmed.prefix(80))")
        }
        var values: [String: PythonLiteral] = [:]
        for (key, value) in entries { values[key] = value }
        guard case .string(let descr)? = values["descr"] else {
            throw fail(
                "bad .npy header: 'descr' is missing or not a simple dtype string (structured dtypes are not supported)"
            )
        }
        guard case .bool(let fortran)? = values["fortran_order"] else {
            throw fail("bad .npy header: 'fortran_order' is missing or not True/False")
        }
        guard case .tuple(let extents)? = values["shape"] else {
            throw fail("bad .npy header: 'shape' is missing or not a tuple")
        }
        var shape: [Int] = []
        for extent in extents {
            guard case .integer(let value) = extent, value >= 0 else {
                throw fail("bad .npy header: shape \(text.trimmed) has an extent that is not a non-negative integer")
            }
            shape.append(value)
        }
        let order = descr.first
        let code = String(descr.dropFirst())
        guard let order, "<>|=".contains(order), let type = NumericArray.ElementType(rawValue: code) else {
            let supported = NumericArray.ElementType.allCases.map(\.rawValue).joined(separator: ", ")
            throw fail("dtype '\(descr)' is not supported (cgt reads \(supported))")
        }
        self.descr = descr
        elementType = type
        isBigEndian = order == ">"
        fortranOrder = fortran
        self.shape = shape
    }
}

/// The few Python literals a `.npy` header contains.
enum PythonLiteral {
    case string(String)
    case integer(Int)
    case bool(Bool)
    case none
    case tuple([PythonLiteral])
    case list([PythonLiteral])
    case dict([(String, PythonLiteral)])
}

/// A recursive-descent parser for `PythonLiteral`s over UTF-8 bytes.
struct PythonLiteralParser {
    struct Failure: Error {}
    let text: [UInt8]
    var position = 0

    /// Parses one literal; nesting deeper than `depth` is refused (a header is never deep).
    mutating func parseValue(depth: Int = 8) throws -> PythonLiteral {
        skipSpace()
        guard position < text.count, depth > 0 else { throw Failure() }
        switch text[position] {
        case UInt8(ascii: "{"):
            position += 1
            var entries: [(String, PythonLiteral)] = []
            while true {
                skipSpace()
                if consume("}") { return .dict(entries) }
                guard case .string(let key) = try parseValue(depth: depth - 1) else { throw Failure() }
                skipSpace()
                guard consume(":") else { throw Failure() }
                entries.append((key, try parseValue(depth: depth - 1)))
                skipSpace()
                if consume("}") { return .dict(entries) }
                guard consume(",") else { throw Failure() }
            }
        case UInt8(ascii: "("), UInt8(ascii: "["):
            let close: Character = text[position] == UInt8(ascii: "(") ? ")" : "]"
            let isTuple = close == ")"
            position += 1
            var items: [PythonLiteral] = []
            while true {
                skipSpace()
                if consume(close) { return isTuple ? .tuple(items) : .list(items) }
                items.append(try parseValue(depth: depth - 1))
                skipSpace()
                if consume(close) { return isTuple ? .tuple(items) : .list(items) }
                guard consume(",") else { throw Failure() }
            }
        case UInt8(ascii: "'"), UInt8(ascii: "\""):
            let quote = text[position]
            position += 1
            let start = position
            while position < text.count && text[position] != quote {
                if text[position] == UInt8(ascii: "\\") { throw Failure() }
                position += 1
            }
            guard position < text.count else { throw Failure() }
            position += 1
            return .string(String(decoding: text[start..<(position - 1)], as: UTF8.self))
        default:
            let start = position
            while position < text.count, isWordByte(text[position]) { position += 1 }
            var word = String(decoding: text[start..<position], as: UTF8.self)
            switch word {
            case "True": return .bool(true)
            case "False": return .bool(false)
            case "None": return .none
            default:
                if word.hasSuffix("L") { word.removeLast() }
                guard let value = Int(word) else { throw Failure() }
                return .integer(value)
            }
        }
    }

    private func isWordByte(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "-")
            || byte == UInt8(ascii: "+")
            || byte == UInt8(ascii: "_")
    }

    private mutating func skipSpace() {
        while position < text.count,
            [UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\t"), UInt8(ascii: "\r")].contains(text[position])
        {
            position += 1
        }
    }

    private mutating func consume(_ character: Character) -> Bool {
        guard position < text.count, text[position] == character.asciiValue else { return false }
        position += 1
        return true
    }
}
