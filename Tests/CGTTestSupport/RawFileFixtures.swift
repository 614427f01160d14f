import Foundation

/// Small raw input files (IDX, `.npy`, gzip, zip, CSV) built byte by byte from their format
/// specifications, so reader tests do not depend on the code they test.
///
/// gzip here uses deflate's stored blocks (no compression) and a table CRC-32 written from
/// RFC 1952, which makes it independent of zlib; tests that need real compression use zlib's
/// deflate directly.
public enum RawFiles {
    /// The bytes of `values`, each `T` little- or big-endian.
    public static func bytes<T: FixedWidthInteger>(_ values: [T], bigEndian: Bool = false) -> [UInt8] {
        values.flatMap { value -> [UInt8] in
            let stored = bigEndian ? value.bigEndian : value.littleEndian
            return withUnsafeBytes(of: stored) { Array($0) }
        }
    }

    public static func bytes(_ values: [Float], bigEndian: Bool = false) -> [UInt8] {
        bytes(values.map(\.bitPattern), bigEndian: bigEndian)
    }
    public static func bytes(_ values: [Double], bigEndian: Bool = false) -> [UInt8] {
        bytes(values.map(\.bitPattern), bigEndian: bigEndian)
    }

    /// A `.npy` file: magic, version, a header dict padded with spaces to a multiple of 64 bytes, then `data`.
    public static func npy(descr: String, shape: [Int], fortranOrder: Bool = false, data: [UInt8], version: UInt8 = 1)
        -> [UInt8]
    {
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(\(shape.map(String.init).joined(separator: ", ")))"
        return npy(
            header:
                "{'descr': '\(descr)', 'fortran_order': \(fortranOrder ? "True" : "False"), 'shape': \(shapeText), }",
            data: data, version: version)
    }

    /// A `.npy` file with a given header text (for malformed headers).
    public static func npy(header: String, data: [UInt8], version: UInt8 = 1) -> [UInt8] {
        let preamble = version == 1 ? 10 : 12
        var text = Array(header.utf8)
        while (preamble + text.count + 1) % 64 != 0 { text.append(0x20) }
        text.append(0x0A)
        var file: [UInt8] = [0x93] + Array("NUMPY".utf8) + [version, 0]
        file += version == 1 ? bytes([UInt16(text.count)]) : bytes([UInt32(text.count)])
        return file + text + data
    }

    /// An IDX file: 00 00 type dims, big-endian 32-bit extents, then `data` (already big-endian).
    public static func idx(typeCode: UInt8, shape: [Int], data: [UInt8]) -> [UInt8] {
        [0, 0, typeCode, UInt8(shape.count)] + bytes(shape.map { UInt32($0) }, bigEndian: true) + data
    }

    /// A gzip member holding `data` in deflate stored blocks.
    public static func gzipStored(_ data: [UInt8]) -> [UInt8] {
        [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff] + deflateStored(data)
            + bytes([crc32(data), UInt32(truncatingIfNeeded: data.count)])
    }

    /// A raw deflate stream (as in a zip member) holding `data` in stored blocks.
    public static func deflateStored(_ data: [UInt8]) -> [UInt8] {
        var stream: [UInt8] = []
        var offset = 0
        repeat {
            let length = min(65_535, data.count - offset)
            let final: UInt8 = offset + length == data.count ? 1 : 0
            stream += [final] + bytes([UInt16(length), ~UInt16(length)])
            stream += data[offset..<(offset + length)]
            offset += length
        } while offset < data.count
        return stream
    }

    /// CRC-32 (ISO 3309, as gzip and zip use it), from its reflected polynomial 0xEDB88320.
    public static func crc32(_ data: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in data {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }

    /// A zip archive of `members`; each is stored (method 0) unless `deflated` supplies its
    /// compressed bytes (method 8).
    public static func zip(_ members: [(name: String, data: [UInt8], deflated: [UInt8]?)]) -> [UInt8] {
        var archive: [UInt8] = []
        var directory: [UInt8] = []
        for member in members {
            let name = Array(member.name.utf8)
            let payload = member.deflated ?? member.data
            let method: UInt16 = member.deflated == nil ? 0 : 8
            let sizes = bytes([crc32(member.data), UInt32(payload.count), UInt32(member.data.count)])
            let offset = UInt32(archive.count)
            archive += bytes([UInt32(0x0403_4b50)]) + bytes([UInt16(20), 0, method, 0, 0]) + sizes
            archive += bytes([UInt16(name.count), 0]) + name + payload
            directory += bytes([UInt32(0x0201_4b50)]) + bytes([UInt16(20), 20, 0, method, 0, 0]) + sizes
            directory += bytes([UInt16(name.count), 0, 0, 0, 0]) + bytes([UInt32(0), offset]) + name
        }
        let end =
            bytes([UInt32(0x0605_4b50)]) + bytes([UInt16(0), 0, UInt16(members.count), UInt16(members.count)])
            + bytes([UInt32(directory.count), UInt32(archive.count)]) + bytes([UInt16(0)])
        return archive + directory + end
    }

    public static func write(_ bytes: [UInt8], to path: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }
}
