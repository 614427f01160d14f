import CZlib

/// Reads NumPy `.npz` archives: zip files whose members are `.npy` arrays, stored or deflated.
///
/// Only the central directory is trusted for sizes (NumPy writes its local headers with
/// zip64 placeholders); each member's size is checked against the archive's length before it
/// is allocated, and its CRC-32 against the stored one after it is unpacked.
public struct NPZArchive {
    /// One member as the central directory describes it.
    public struct Member: Sendable {
        public let name: String
        let method: UInt16
        let flags: UInt16
        let crc32: UInt32
        let compressedSize: Int
        let uncompressedSize: Int
        let localHeaderOffset: Int
    }

    public let path: String
    public let members: [Member]
    private let bytes: [UInt8]

    public init(_ source: SourceFile) throws {
        path = source.path
        bytes = source.bytes
        members = try Self.readCentralDirectory(bytes, path: path)
    }

    /// Member names without their `.npy` suffix: the keys `numpy.load` shows.
    public var arrayNames: [String] {
        members.map { $0.name.hasSuffix(".npy") ? String($0.name.dropLast(4)) : $0.name }
    }

    /// The array stored as `name` (or `name.npy`).
    public func array(named name: String) throws -> NumericArray {
        guard let member = members.first(where: { $0.name == name || $0.name == name + ".npy" }) else {
            throw DatasetError(
                file: path, object: "", "has no array '\(name)' (it holds \(arrayNames.joined(separator: ", ")))")
        }
        return try NPYReader.read(try contents(of: member), file: path, object: member.name)
    }

    /// The unpacked bytes of `member`, checked against its size and CRC-32.
    func contents(of member: Member) throws -> [UInt8] {
        func fail(_ problem: String) -> DatasetError { DatasetError(file: path, object: member.name, problem) }
        guard member.flags & 1 == 0 else { throw fail("is encrypted") }
        let local = member.localHeaderOffset
        guard local <= bytes.count - 30, bytes.le32(at: local) == 0x0403_4b50 else {
            throw fail("local header at offset \(local) is missing or damaged")
        }
        let dataStart = local + 30 + Int(bytes.le16(at: local + 26)) + Int(bytes.le16(at: local + 28))
        guard dataStart <= bytes.count, member.compressedSize <= bytes.count - dataStart else {
            throw fail("needs \(member.compressedSize) bytes of data but the archive ends first (truncated?)")
        }
        let packed = Array(bytes[dataStart..<(dataStart + member.compressedSize)])
        let unpacked: [UInt8]
        switch member.method {
        case 0:
            guard member.compressedSize == member.uncompressedSize else {
                throw fail(
                    "is stored uncompressed but its sizes differ (\(member.compressedSize) and \(member.uncompressedSize))"
                )
            }
            unpacked = packed
        case 8:
            guard member.uncompressedSize / GzipInflater.maximumExpansion <= member.compressedSize else {
                throw fail(
                    "claims \(member.uncompressedSize) bytes, more than \(member.compressedSize) deflated bytes can hold"
                )
            }
            unpacked = try GzipInflater.inflate(
                packed, format: .rawDeflate, expectedCount: member.uncompressedSize,
                file: path, object: member.name)
        default:
            throw fail("uses zip compression method \(member.method); cgt reads stored (0) and deflated (8) members")
        }
        let crc = unpacked.withUnsafeBufferPointer { buffer -> UInt32 in
            var value = UInt32(CZlib.crc32(0, nil, 0))
            var offset = 0
            while offset < buffer.count {
                let length = min(buffer.count - offset, Int(UInt32.max))
                value = UInt32(CZlib.crc32(UInt(value), buffer.baseAddress! + offset, UInt32(length)))
                offset += length
            }
            return value
        }
        guard crc == member.crc32 else {
            throw fail(
                "CRC-32 mismatch (stored \(String(member.crc32, radix: 16)), computed \(String(crc, radix: 16))): the archive is corrupt"
            )
        }
        return unpacked
    }

    private static func readCentralDirectory(_ bytes: [UInt8], path: String) throws -> [Member] {
        func fail(_ problem: String) -> DatasetError { DatasetError(file: path, object: "", problem) }
        let searchStart = max(0, bytes.count - 22 - 65_535)
        guard bytes.count >= 22,
            let end = stride(from: bytes.count - 22, through: searchStart, by: -1).first(where: {
                bytes.le32(at: $0) == 0x0605_4b50
            })
        else {
            throw fail("not a zip (.npz) archive: no end-of-central-directory record (truncated?)")
        }
        var entryCount = Int(bytes.le16(at: end + 10))
        var directorySize = Int(bytes.le32(at: end + 12))
        var directoryOffset = Int(bytes.le32(at: end + 16))
        if entryCount == 0xFFFF || directorySize == 0xFFFF_FFFF || directoryOffset == 0xFFFF_FFFF {
            let locator = end - 20
            guard locator >= 0, bytes.le32(at: locator) == 0x0706_4b50 else {
                throw fail("zip64 end-of-central-directory locator is missing")
            }
            let record = Int(clamping: bytes.le64(at: locator + 8))
            guard record >= 0, record <= bytes.count - 56, bytes.le32(at: record) == 0x0606_4b50 else {
                throw fail("zip64 end-of-central-directory record is missing or damaged")
            }
            entryCount = Int(clamping: bytes.le64(at: record + 32))
            directorySize = Int(clamping: bytes.le64(at: record + 40))
            directoryOffset = Int(clamping: bytes.le64(at: record + 48))
        }
        guard directoryOffset <= bytes.count, directorySize <= bytes.count - directoryOffset else {
            throw fail(
                "central directory (\(directorySize) bytes at offset \(directoryOffset)) lies outside the file (truncated?)"
            )
        }
        var members: [Member] = []
        var position = directoryOffset
        for _ in 0..<entryCount {
            guard position <= bytes.count - 46, bytes.le32(at: position) == 0x0201_4b50 else {
                throw fail("central directory entry \(members.count) is damaged")
            }
            let nameLength = Int(bytes.le16(at: position + 28))
            let extraLength = Int(bytes.le16(at: position + 30))
            let commentLength = Int(bytes.le16(at: position + 32))
            let next = position + 46 + nameLength + extraLength + commentLength
            guard next <= bytes.count else {
                throw fail("central directory entry \(members.count) runs past the end of the file")
            }
            let name = String(decoding: bytes[(position + 46)..<(position + 46 + nameLength)], as: UTF8.self)
            var uncompressed = Int(bytes.le32(at: position + 24))
            var compressed = Int(bytes.le32(at: position + 20))
            var offset = Int(bytes.le32(at: position + 42))
            // The zip64 extra field holds, in this order, whichever of the three were 0xFFFFFFFF.
            var extra = position + 46 + nameLength
            let extraEnd = extra + extraLength
            while extra + 4 <= extraEnd {
                let id = bytes.le16(at: extra)
                let size = Int(bytes.le16(at: extra + 2))
                if id == 1 {
                    var field = extra + 4
                    func next64() -> Int? {
                        guard field + 8 <= extra + 4 + size else { return nil }
                        defer { field += 8 }
                        return Int(clamping: bytes.le64(at: field))
                    }
                    if uncompressed == 0xFFFF_FFFF, let value = next64() { uncompressed = value }
                    if compressed == 0xFFFF_FFFF, let value = next64() { compressed = value }
                    if offset == 0xFFFF_FFFF, let value = next64() { offset = value }
                }
                extra += 4 + size
            }
            members.append(
                Member(
                    name: name, method: bytes.le16(at: position + 10), flags: bytes.le16(at: position + 8),
                    crc32: bytes.le32(at: position + 16), compressedSize: compressed,
                    uncompressedSize: uncompressed, localHeaderOffset: offset))
            position = next
        }
        return members
    }
}

extension Array where Element == UInt8 {
    func le16(at offset: Int) -> UInt16 { UInt16(self[offset]) | UInt16(self[offset + 1]) << 8 }
    func le32(at offset: Int) -> UInt32 { UInt32(le16(at: offset)) | UInt32(le16(at: offset + 2)) << 16 }
    func le64(at offset: Int) -> UInt64 { UInt64(le32(at: offset)) | UInt64(le32(at: offset + 4)) << 32 }
}
