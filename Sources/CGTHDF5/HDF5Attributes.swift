import CGTFiles
import CHDF5
import Foundation

/// Something that carries HDF5 attributes: a group (including the root group, which holds a
/// file's attributes) or a dataset.
///
/// Strings are written as variable-length UTF-8 (what h5py writes and returns as `str`),
/// integers as int64 and reals as float64. Setting an existing attribute replaces it; reading
/// a missing one throws an `HDF5Error` naming the file, the object and the attribute.
public protocol HDF5AttributeHolder {
    func setAttribute(_ name: String, _ value: String) throws
    func setAttribute(_ name: String, _ value: [String]) throws
    func setAttribute(_ name: String, _ value: Int) throws
    func setAttribute(_ name: String, _ value: [Int]) throws
    func setAttribute(_ name: String, _ value: Double) throws
    func setAttribute(_ name: String, _ value: [Double]) throws
    func hasAttribute(_ name: String) -> Bool
    func attributeNames() throws -> [String]
    /// Accepts fixed-length (null- or space-padded) and variable-length strings.
    func stringAttribute(_ name: String) throws -> String
    func stringArrayAttribute(_ name: String) throws -> [String]
    /// Accepts any integer type.
    func intAttribute(_ name: String) throws -> Int
    func intArrayAttribute(_ name: String) throws -> [Int]
    /// Accepts any integer or floating-point type.
    func doubleAttribute(_ name: String) throws -> Double
    func doubleArrayAttribute(_ name: String) throws -> [Double]
}

extension HDF5Object {
    public func setAttribute(_ name: String, _ value: String) throws {
        try setAttribute(name, [value], scalar: true)
    }

    public func setAttribute(_ name: String, _ value: [String]) throws {
        try setAttribute(name, value, scalar: false)
    }

    public func setAttribute(_ name: String, _ value: Int) throws {
        var stored = Int64(value)
        try writeAttribute(name, type: chdf5_native_int64(), count: nil, &stored)
    }

    public func setAttribute(_ name: String, _ value: [Int]) throws {
        let stored = value.map { Int64($0) }
        try writeAttribute(name, type: chdf5_native_int64(), count: stored.count, stored)
    }

    public func setAttribute(_ name: String, _ value: Double) throws {
        var stored = value
        try writeAttribute(name, type: chdf5_native_double(), count: nil, &stored)
    }

    public func setAttribute(_ name: String, _ value: [Double]) throws {
        try writeAttribute(name, type: chdf5_native_double(), count: value.count, value)
    }

    /// Wraps `H5Aexists`.
    public func hasAttribute(_ name: String) -> Bool {
        H5Aexists(id, name) > 0
    }

    /// Names of this object's attributes, sorted.
    ///
    /// Wraps `H5Aiterate2`.
    public func attributeNames() throws -> [String] {
        var names: [String] = []
        var index: hsize_t = 0
        _ = try withUnsafeMutablePointer(to: &names) { names in
            try check(
                H5Aiterate2(
                    id, H5_INDEX_NAME, H5_ITER_INC, &index,
                    { _, name, _, names in
                        guard let name, let names else { return -1 }
                        names.assumingMemoryBound(to: [String].self).pointee.append(String(cString: name))
                        return 0
                    }, names), "H5Aiterate2")
        }
        return names.sorted()
    }

    public func stringAttribute(_ name: String) throws -> String {
        try single(name, stringArrayAttribute(name))
    }

    public func stringArrayAttribute(_ name: String) throws -> [String] {
        try withAttribute(name) { attribute, type, space, count in
            guard H5Tget_class(type) == H5T_STRING else {
                throw attributeError(name, "is \(HDF5ElementType(typeID: type)), not a string")
            }
            guard count > 0 else { return [] }
            if try check(H5Tis_variable_str(type), "H5Tis_variable_str") > 0 {
                return try readVariableLengthStrings(attribute, fileType: type, space: space, count: count)
            }
            let size = H5Tget_size(type)
            var bytes = [UInt8](repeating: 0, count: count * size)
            try check(H5Aread(attribute, type, &bytes), "H5Aread")
            let spacePadded = H5Tget_strpad(type) == H5T_STR_SPACEPAD
            return (0..<count).map { element in
                var text = bytes[(element * size)..<((element + 1) * size)]
                if let end = text.firstIndex(of: 0) { text = text[..<end] }
                if spacePadded {
                    let end = text.lastIndex(where: { $0 != UInt8(ascii: " ") }).map { $0 + 1 } ?? text.startIndex
                    text = text[..<end]
                }
                return String(decoding: text, as: UTF8.self)
            }
        }
    }

    public func intAttribute(_ name: String) throws -> Int {
        try single(name, intArrayAttribute(name))
    }

    public func intArrayAttribute(_ name: String) throws -> [Int] {
        let values: [Int64] = try readNumbers(name, accepting: [H5T_INTEGER])
        return values.map { Int($0) }
    }

    public func doubleAttribute(_ name: String) throws -> Double {
        try single(name, doubleArrayAttribute(name))
    }

    public func doubleArrayAttribute(_ name: String) throws -> [Double] {
        try readNumbers(name, accepting: [H5T_FLOAT, H5T_INTEGER])
    }

    // MARK: - Implementation

    private func attributeError(_ name: String, _ problem: String) -> HDF5Error {
        error("H5Aread", "attribute '\(name)' \(problem)")
    }

    private func single<T>(_ name: String, _ values: [T]) throws -> T {
        guard values.count == 1 else {
            throw attributeError(name, "holds \(values.count) values, expected one")
        }
        return values[0]
    }

    /// Replaces the attribute `name` with `count` elements of `type` (a scalar when `count` is nil).
    private func writeAttribute(_ name: String, type: hid_t, count: Int?, _ data: UnsafeRawPointer?) throws {
        if H5Aexists(id, name) > 0 {
            try check(H5Adelete(id, name), "H5Adelete")
        }
        let space: hid_t
        switch count {
        case nil: space = try check(H5Screate(H5S_SCALAR), "H5Screate")
        case 0?: space = try check(H5Screate(H5S_NULL), "H5Screate")
        case let count?: space = try makeDataspace(shape: [count])
        }
        defer { H5Sclose(space) }
        let attribute = try check(H5Acreate2(id, name, type, space, chdf5_p_default(), chdf5_p_default()), "H5Acreate2")
        defer { H5Aclose(attribute) }
        if count != 0 {
            try check(H5Awrite(attribute, type, data), "H5Awrite")
        }
    }

    private func setAttribute(_ name: String, _ values: [String], scalar: Bool) throws {
        let type = try variableLengthStringType(characterSet: H5T_CSET_UTF8)
        defer { H5Tclose(type) }
        let copies = values.map { strdup($0) }
        defer { copies.forEach { free($0) } }
        let pointers = copies.map { UnsafePointer($0) }
        try writeAttribute(name, type: type, count: scalar ? nil : pointers.count, pointers)
    }

    private func variableLengthStringType(characterSet: H5T_cset_t) throws -> hid_t {
        let type = try check(H5Tcopy(chdf5_c_s1()), "H5Tcopy")
        do {
            try check(H5Tset_size(type, chdf5_variable()), "H5Tset_size")
            try check(H5Tset_cset(type, characterSet), "H5Tset_cset")
        } catch {
            H5Tclose(type)
            throw error
        }
        return type
    }

    private func readVariableLengthStrings(_ attribute: hid_t, fileType: hid_t, space: hid_t, count: Int) throws
        -> [String]
    {
        let memoryType = try variableLengthStringType(characterSet: H5Tget_cset(fileType))
        defer { H5Tclose(memoryType) }
        var pointers = [UnsafeMutablePointer<CChar>?](repeating: nil, count: count)
        try check(H5Aread(attribute, memoryType, &pointers), "H5Aread")
        defer { _ = chdf5_reclaim(memoryType, space, &pointers) }
        return pointers.map { $0.map { String(cString: $0) } ?? "" }
    }

    private func readNumbers<T: HDF5Scalar & Numeric>(_ name: String, accepting classes: [H5T_class_t]) throws -> [T] {
        try withAttribute(name) { attribute, type, _, count in
            guard classes.contains(H5Tget_class(type)) else {
                throw attributeError(name, "is \(HDF5ElementType(typeID: type)), not \(T.hdf5Type)-convertible")
            }
            var values = [T](repeating: T.zero, count: count)
            if count > 0 {
                try values.withUnsafeMutableBufferPointer {
                    _ = try check(H5Aread(attribute, T.nativeTypeID, $0.baseAddress), "H5Aread")
                }
            }
            return values
        }
    }

    /// Opens the attribute `name` with its stored type, dataspace and element count.
    private func withAttribute<R>(
        _ name: String, _ body: (_ attribute: hid_t, _ type: hid_t, _ space: hid_t, _ count: Int) throws -> R
    ) throws -> R {
        guard hasAttribute(name) else {
            throw error("H5Aopen", "no attribute '\(name)'")
        }
        let attribute = try check(H5Aopen(id, name, chdf5_p_default()), "H5Aopen")
        defer { H5Aclose(attribute) }
        let type = try check(H5Aget_type(attribute), "H5Aget_type")
        defer { H5Tclose(type) }
        let space = try check(H5Aget_space(attribute), "H5Aget_space")
        defer { H5Sclose(space) }
        let count = try check(H5Sget_simple_extent_npoints(space), "H5Sget_simple_extent_npoints")
        // A damaged header can declare any count; the values are read into memory whole.
        if let refusal = MemoryBudget.refusal([Int(count)], elementSize: max(H5Tget_size(type), 8)) {
            throw attributeError(name, "declares \(count) values: reading them \(refusal)")
        }
        return try body(attribute, type, space, Int(count))
    }
}
