/// An n-dimensional array of numbers as a source file stored it: raw bytes in C (row-major)
/// order, an element type and a byte order.
///
/// Readers (IDX, `.npy`) produce it without converting anything, so a `uint8` image file costs
/// one byte per pixel until the samples are made; conversion to `Float` features or integer
/// labels happens once, in `floatValues()` and `integerValues(file:object:)`.
public struct NumericArray: Sendable {
    /// The element types cgt reads, named as NumPy's dtype codes.
    public enum ElementType: String, Sendable, CaseIterable {
        case bool = "b1"
        case int8 = "i1"
        case uint8 = "u1"
        case int16 = "i2"
        case uint16 = "u2"
        case int32 = "i4"
        case uint32 = "u4"
        case int64 = "i8"
        case uint64 = "u8"
        case float32 = "f4"
        case float64 = "f8"

        public var size: Int {
            switch self {
            case .bool, .int8, .uint8: return 1
            case .int16, .uint16: return 2
            case .int32, .uint32, .float32: return 4
            case .int64, .uint64, .float64: return 8
            }
        }

        public var isFloatingPoint: Bool { self == .float32 || self == .float64 }
    }

    public let shape: [Int]
    public let elementType: ElementType
    public let isBigEndian: Bool
    /// `count * elementType.size` bytes, C order.
    public let bytes: [UInt8]

    public init(shape: [Int], elementType: ElementType, isBigEndian: Bool, bytes: [UInt8]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative extent in \(shape)")
        precondition(
            bytes.count == shape.reduce(1, *) * elementType.size,
            "\(bytes.count) bytes for shape \(shape) of \(elementType.rawValue)")
        self.shape = shape
        self.elementType = elementType
        self.isBigEndian = isBigEndian
        self.bytes = bytes
    }

    public var count: Int { shape.reduce(1, *) }

    /// NumPy's name of the stored type, e.g. "<u2" or ">f8".
    public var typeDescription: String {
        elementType.size == 1 ? "|\(elementType.rawValue)" : "\(isBigEndian ? ">" : "<")\(elementType.rawValue)"
    }

    /// Every element converted to `Float` (rounded to nearest; float64 beyond float32's range becomes infinite).
    public func floatValues() -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { output, initialized in
            bytes.withUnsafeBytes { convert($0, into: output) }
            initialized = count
        }
    }

    /// Every element as an integer; a fractional, non-finite or too-large element throws, naming its index.
    public func integerValues(file: String, object: String = "") throws -> [Int64] {
        if !elementType.isFloatingPoint && elementType != .uint64 {
            return [Int64](unsafeUninitializedCapacity: count) { output, initialized in
                bytes.withUnsafeBytes { convertIntegers($0, into: output) }
                initialized = count
            }
        }
        var values = [Int64](repeating: 0, count: count)
        try bytes.withUnsafeBytes { raw in
            for index in 0..<count {
                let exact: Int64?
                let shown: String
                switch elementType {
                case .uint64:
                    let value = load(raw, index, as: UInt64.self)
                    (exact, shown) = (Int64(exactly: value), "\(value)")
                case .float32:
                    let value = Float(bitPattern: load(raw, index, as: UInt32.self))
                    (exact, shown) = (Int64(exactly: value), "\(value)")
                default:
                    let value = Double(bitPattern: load(raw, index, as: UInt64.self))
                    (exact, shown) = (Int64(exactly: value), "\(value)")
                }
                guard let exact else {
                    throw DatasetError(file: file, object: object, "element \(index) is \(shown), not an integer label")
                }
                values[index] = exact
            }
        }
        return values
    }

    // MARK: - Conversion kernels

    @inline(__always)
    private func load<T: FixedWidthInteger>(_ raw: UnsafeRawBufferPointer, _ index: Int, as type: T.Type) -> T {
        let stored = raw.loadUnaligned(fromByteOffset: index * MemoryLayout<T>.size, as: T.self)
        return isBigEndian ? T(bigEndian: stored) : T(littleEndian: stored)
    }

    private func convert(_ raw: UnsafeRawBufferPointer, into output: UnsafeMutableBufferPointer<Float>) {
        Self.convert(raw, elementType, isBigEndian: isBigEndian, into: output)
    }

    /// Converts `output.count` elements of `type` in `raw` to `Float`, as `floatValues()` does:
    /// the one conversion for arrays in memory and rows streamed from a file.
    static func convert(
        _ raw: UnsafeRawBufferPointer, _ type: ElementType, isBigEndian: Bool,
        into output: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(raw.count >= output.count * type.size, "\(raw.count) bytes for \(output.count) \(type.rawValue)")
        @inline(__always)
        func load<T: FixedWidthInteger>(_ index: Int, as _: T.Type) -> T {
            let stored = raw.loadUnaligned(fromByteOffset: index * MemoryLayout<T>.size, as: T.self)
            return isBigEndian ? T(bigEndian: stored) : T(littleEndian: stored)
        }
        @inline(__always)
        func fill(_ value: (Int) -> Float) {
            for i in 0..<output.count { output[i] = value(i) }
        }
        switch type {
        case .bool, .uint8:
            for i in 0..<output.count { output[i] = Float(raw[i]) }
        case .int8:
            for i in 0..<output.count { output[i] = Float(Int8(bitPattern: raw[i])) }
        case .int16: fill { Float(load($0, as: Int16.self)) }
        case .uint16: fill { Float(load($0, as: UInt16.self)) }
        case .int32: fill { Float(load($0, as: Int32.self)) }
        case .uint32: fill { Float(load($0, as: UInt32.self)) }
        case .int64: fill { Float(load($0, as: Int64.self)) }
        case .uint64: fill { Float(load($0, as: UInt64.self)) }
        case .float32: fill { Float(bitPattern: load($0, as: UInt32.self)) }
        case .float64: fill { Float(Double(bitPattern: load($0, as: UInt64.self))) }
        }
    }

    private func convertIntegers(_ raw: UnsafeRawBufferPointer, into output: UnsafeMutableBufferPointer<Int64>) {
        switch elementType {
        case .bool, .uint8: fill(output) { Int64(raw[$0]) }
        case .int8: fill(output) { Int64(Int8(bitPattern: raw[$0])) }
        case .int16: fill(output) { Int64(load(raw, $0, as: Int16.self)) }
        case .uint16: fill(output) { Int64(load(raw, $0, as: UInt16.self)) }
        case .int32: fill(output) { Int64(load(raw, $0, as: Int32.self)) }
        case .uint32: fill(output) { Int64(load(raw, $0, as: UInt32.self)) }
        case .int64: fill(output) { load(raw, $0, as: Int64.self) }
        case .uint64, .float32, .float64: preconditionFailure("checked conversion needed for \(elementType)")
        }
    }

    @inline(__always)
    private func fill<T>(_ output: UnsafeMutableBufferPointer<T>, _ value: (Int) -> T) {
        for i in 0..<output.count { output[i] = value(i) }
    }
}
