import CGTFiles
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

        /// Refuses unpacked bytes whose CRC-32 is not the stored one.
        func checkCRC(_ computed: UInt32, path: String) throws {
            guard computed == crc32 else {
                throw DatasetError(
                    file: path, object: name,
                    "CRC-32 mismatch (stored \(String(crc32, radix: 16)), computed \(String(computed, radix: 16))): the archive is corrupt"
                )
            }
        }
    }

    public let path: String
    public let members: [Member]
    private let bytes: [UInt8]

    public init(_ source: SourceFile) throws {
        path = source.path
        bytes = source.bytes
        let bytes = source.bytes
        members = try Self.readCentralDirectory(size: bytes.count, path: path) { Array(bytes[$0..<($0 + $1)]) }
    }

    /// Member names without their `.npy` suffix: the keys `numpy.load` shows.
    public var arrayNames: [String] { Self.arrayNames(members) }

    static func arrayNames(_ members: [Member]) -> [String] {
        members.map { $0.name.hasSuffix(".npy") ? String($0.name.dropLast(4)) : $0.name }
    }

    /// The array stored as `name` (or `name.npy`).
    public func array(named name: String) throws -> NumericArray {
        let (member, _) = try Self.member(named: name, in: members, path: path)
        return try NPYReader.read(try contents(of: member), file: path, object: member.name)
    }

    /// The member holding array `name` (or `name.npy`); with no name, the only array, and its name.
    static func member(named name: String?, in members: [Member], path: String) throws -> (Member, name: String) {
        let names = arrayNames(members)
        guard let name else {
            guard members.count == 1 else {
                throw DatasetError(
                    file: path, object: "",
                    "holds \(names.count) arrays (\(names.joined(separator: ", "))); name one as \(path):NAME")
            }
            return (members[0], names[0])
        }
        guard let member = members.first(where: { $0.name == name || $0.name == name + ".npy" }) else {
            throw DatasetError(
                file: path, object: "", "has no array '\(name)' (it holds \(names.joined(separator: ", ")))")
        }
        return (member, name)
    }

    /// The unpacked bytes of `member`, checked against its size and CRC-32.
    func contents(of member: Member) throws -> [UInt8] {
        let bytes = bytes
        let data = try Self.dataRange(of: member, size: bytes.count, path: path) { Array(bytes[$0..<($0 + $1)]) }
        let packed = Array(bytes[data])
        let unpacked: [UInt8]
        switch member.method {
        case 0:
            unpacked = packed
        default:
            unpacked = try GzipInflater.inflate(
                packed, format: .rawDeflate, expectedCount: member.uncompressedSize,
                file: path, object: member.name)
        }
        try member.checkCRC(Self.crc32(of: unpacked, continuing: Self.emptyCRC), path: path)
        return unpacked
    }

    /// Where the packed data of `member` lies in an archive of `size` bytes, after checking
    /// that cgt can unpack it: read from its local header through `read(offset, count)`.
    static func dataRange(
        of member: Member, size: Int, path: String, read: (_ offset: Int, _ count: Int) throws -> [UInt8]
    ) throws -> Range<Int> {
        func fail(_ problem: String) -> DatasetError { DatasetError(file: path, object: member.name, problem) }
        guard member.flags & 1 == 0 else { throw fail("is encrypted") }
        let local = member.localHeaderOffset
        guard local >= 0, local <= size - 30, case let header = try read(local, 30), header.le32(at: 0) == 0x0403_4b50
        else {
            throw fail("local header at offset \(local) is missing or damaged")
        }
        let dataStart = local + 30 + Int(header.le16(at: 26)) + Int(header.le16(at: 28))
        guard dataStart <= size, member.compressedSize <= size - dataStart else {
            throw fail("needs \(member.compressedSize) bytes of data but the archive ends first (truncated?)")
        }
        switch member.method {
        case 0:
            guard member.compressedSize == member.uncompressedSize else {
                throw fail(
                    "is stored uncompressed but its sizes differ (\(member.compressedSize) and \(member.uncompressedSize))"
                )
            }
        case 8:
            guard member.uncompressedSize / GzipInflater.maximumExpansion <= member.compressedSize else {
                throw fail(
                    "claims \(member.uncompressedSize) bytes, more than \(member.compressedSize) deflated bytes can hold"
                )
            }
        default:
            throw fail("uses zip compression method \(member.method); cgt reads stored (0) and deflated (8) members")
        }
        return dataStart..<(dataStart + member.compressedSize)
    }

    static let emptyCRC = UInt32(CZlib.crc32(0, nil, 0))

    /// The CRC-32 of `bytes` continuing `value` (`emptyCRC` to start).
    static func crc32(of bytes: UnsafeRawBufferPointer, continuing value: UInt32) -> UInt32 {
        var value = value
        var offset = 0
        while offset < bytes.count {
            let length = min(bytes.count - offset, Int(UInt32.max))
            value = UInt32(
                CZlib.crc32(
                    UInt(value), bytes.baseAddress!.assumingMemoryBound(to: UInt8.self) + offset, UInt32(length)))
            offset += length
        }
        return value
    }

    static func crc32(of bytes: [UInt8], continuing value: UInt32) -> UInt32 {
        bytes.withUnsafeBytes { crc32(of: $0, continuing: value) }
    }

    /// The members the central directory lists, reading only the archive's tail and directory
    /// through `read(offset, count)` (the archive's bytes in memory, or its file).
    static func readCentralDirectory(
        size: Int, path: String, read: (_ offset: Int, _ count: Int) throws -> [UInt8]
    ) throws -> [Member] {
        func fail(_ problem: String) -> DatasetError { DatasetError(file: path, object: "", problem) }
        let searchStart = max(0, size - 22 - 65_535)
        let tail = size >= 22 ? try read(searchStart, size - searchStart) : []
        guard tail.count >= 22,
            let found = stride(from: tail.count - 22, through: 0, by: -1).first(where: {
                tail.le32(at: $0) == 0x0605_4b50
            })
        else {
            throw fail("not a zip (.npz) archive: no end-of-central-directory record (truncated?)")
        }
        let end = searchStart + found
        var entryCount = Int(tail.le16(at: found + 10))
        var directorySize = Int(tail.le32(at: found + 12))
        var directoryOffset = Int(tail.le32(at: found + 16))
        if entryCount == 0xFFFF || directorySize == 0xFFFF_FFFF || directoryOffset == 0xFFFF_FFFF {
            let locator = end - 20
            guard locator >= 0, case let locatorBytes = try read(locator, 20), locatorBytes.le32(at: 0) == 0x0706_4b50
            else {
                throw fail("zip64 end-of-central-directory locator is missing")
            }
            let record = Int(clamping: locatorBytes.le64(at: 8))
            guard record >= 0, record <= size - 56, case let recordBytes = try read(record, 56),
                recordBytes.le32(at: 0) == 0x0606_4b50
            else {
                throw fail("zip64 end-of-central-directory record is missing or damaged")
            }
            entryCount = Int(clamping: recordBytes.le64(at: 32))
            directorySize = Int(clamping: recordBytes.le64(at: 40))
            directoryOffset = Int(clamping: recordBytes.le64(at: 48))
        }
        guard directoryOffset <= size, directorySize <= size - directoryOffset else {
            throw fail(
                "central directory (\(directorySize) bytes at offset \(directoryOffset)) lies outside the file (truncated?)"
            )
        }
        if let refusal = MemoryBudget.refusal([directorySize], elementSize: 1) {
            throw fail("has a central directory of \(directorySize) bytes: reading it \(refusal)")
        }
        let directory = try read(directoryOffset, directorySize)
        var members: [Member] = []
        var position = 0
        for _ in 0..<entryCount {
            guard position <= directory.count - 46, directory.le32(at: position) == 0x0201_4b50 else {
                throw fail("central directory entry \(members.count) is damaged")
            }
            let nameLength = Int(directory.le16(at: position + 28))
            let extraLength = Int(directory.le16(at: position + 30))
            let commentLength = Int(directory.le16(at: position + 32))
            let next = position + 46 + nameLength + extraLength + commentLength
            guard next <= directory.count else {
                throw fail("central directory entry \(members.count) runs past the end of the file")
            }
            let name = String(decoding: directory[(position + 46)..<(position + 46 + nameLength)], as: UTF8.self)
            var uncompressed = Int(directory.le32(at: position + 24))
            var compressed = Int(directory.le32(at: position + 20))
            var offset = Int(directory.le32(at: position + 42))
            // The zip64 extra field holds, in this order, whichever of the three were 0xFFFFFFFF.
            var extra = position + 46 + nameLength
            let extraEnd = extra + extraLength
            while extra + 4 <= extraEnd {
                let id = directory.le16(at: extra)
                let size = Int(directory.le16(at: extra + 2))
                if id == 1 {
                    var field = extra + 4
                    func next64() -> Int? {
                        guard field + 8 <= extra + 4 + size, field + 8 <= directory.count else { return nil }
                        defer { field += 8 }
                        return Int(clamping: directory.le64(at: field))
                    }
                    if uncompressed == 0xFFFF_FFFF, let value = next64() { uncompressed = value }
                    if compressed == 0xFFFF_FFFF, let value = next64() { compressed = value }
                    if offset == 0xFFFF_FFFF, let value = next64() { offset = value }
                }
                extra += 4 + size
            }
            members.append(
                Member(
                    name: name, method: directory.le16(at: position + 10), flags: directory.le16(at: position + 8),
                    crc32: directory.le32(at: position + 16), compressedSize: compressed,
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
