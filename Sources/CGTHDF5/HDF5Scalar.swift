import CHDF5

/// The element type of a dataset or attribute, as far as cgt cares about it.
///
/// Derived from the stored type's class, size and sign, so a big-endian `float32` written by
/// another tool is still `.float32`; everything cgt does not read (compound, enum, opaque,
/// half floats, ...) is `.other` with a short name.
public enum HDF5ElementType: Equatable, Sendable, CustomStringConvertible {
    case float32, float64, int8, int16, int32, int64, uint8, uint16, uint32, uint64, string
    case other(String)

    public var description: String {
        switch self {
        case .float32: return "float32"
        case .float64: return "float64"
        case .int8: return "int8"
        case .int16: return "int16"
        case .int32: return "int32"
        case .int64: return "int64"
        case .uint8: return "uint8"
        case .uint16: return "uint16"
        case .uint32: return "uint32"
        case .uint64: return "uint64"
        case .string: return "string"
        case .other(let name): return name
        }
    }

    /// The native in-memory HDF5 type, or nil for strings and `.other` (which need a type
    /// built per use). The returned id is a library constant and must not be closed.
    var nativeTypeID: hid_t? {
        switch self {
        case .float32: return chdf5_native_float()
        case .float64: return chdf5_native_double()
        case .int8: return chdf5_native_int8()
        case .int16: return chdf5_native_int16()
        case .int32: return chdf5_native_int32()
        case .int64: return chdf5_native_int64()
        case .uint8: return chdf5_native_uint8()
        case .uint16: return chdf5_native_uint16()
        case .uint32: return chdf5_native_uint32()
        case .uint64: return chdf5_native_uint64()
        case .string, .other: return nil
        }
    }

    /// Classifies a stored HDF5 datatype.
    init(typeID: hid_t) {
        let size = H5Tget_size(typeID)
        switch H5Tget_class(typeID) {
        case H5T_FLOAT:
            switch size {
            case 4: self = .float32
            case 8: self = .float64
            default: self = .other("float\(size * 8)")
            }
        case H5T_INTEGER:
            let signed = H5Tget_sign(typeID) != H5T_SGN_NONE
            switch (size, signed) {
            case (1, true): self = .int8
            case (2, true): self = .int16
            case (4, true): self = .int32
            case (8, true): self = .int64
            case (1, false): self = .uint8
            case (2, false): self = .uint16
            case (4, false): self = .uint32
            case (8, false): self = .uint64
            default: self = .other("\(signed ? "int" : "uint")\(size * 8)")
            }
        case H5T_STRING: self = .string
        case H5T_COMPOUND: self = .other("compound")
        case H5T_ENUM: self = .other("enum")
        case H5T_BITFIELD: self = .other("bitfield")
        case H5T_OPAQUE: self = .other("opaque")
        case H5T_REFERENCE: self = .other("reference")
        case H5T_VLEN: self = .other("vlen")
        case H5T_ARRAY: self = .other("array")
        case H5T_TIME: self = .other("time")
        default: self = .other("unknown")
        }
    }
}

/// A Swift number type that HDF5 can read into and write from directly.
///
/// HDF5 converts between the stored type and `hdf5Type` during reads and writes, so a
/// `float32` dataset can be read into `[Double]`.
public protocol HDF5Scalar {
    /// The HDF5 type whose native in-memory layout matches `Self`.
    static var hdf5Type: HDF5ElementType { get }
}

extension HDF5Scalar {
    static var nativeTypeID: hid_t {
        guard let id = hdf5Type.nativeTypeID else {
            preconditionFailure("HDF5Scalar \(Self.self) declares non-numeric type \(hdf5Type)")
        }
        return id
    }
}

extension Float: HDF5Scalar { public static var hdf5Type: HDF5ElementType { .float32 } }
extension Double: HDF5Scalar { public static var hdf5Type: HDF5ElementType { .float64 } }
extension Int8: HDF5Scalar { public static var hdf5Type: HDF5ElementType { .int8 } }
extension Int16: HDF5Scalar { public static var hdf5Type: HDF5ElementType { .int16 } }
extension Int32: HDF5Scalar { public static var hdf5Type: HDF5ElementType { .int32 } }
extension Int64: HDF5Scalar { public static var hdf5Type: HDF5ElementType { .int64 } }
extension UInt8: HDF5Scalar { public static var hdf5Type: HDF5ElementType { .uint8 } }
extension UInt16: HDF5Scalar { public static var hdf5Type: HDF5ElementType { .uint16 } }
extension UInt32: HDF5Scalar { public static var hdf5Type: HDF5ElementType { .uint32 } }
extension UInt64: HDF5Scalar { public static var hdf5Type: HDF5ElementType { .uint64 } }
