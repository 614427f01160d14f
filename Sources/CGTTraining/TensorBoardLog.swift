import CGTFiles
import Foundation

/// TensorBoard event files written by cgt itself (`logging.tensorboard`), read by
/// `tensorboard --logdir runs/`: no Python at training time.
///
/// A file is a sequence of records (length as uint64, its masked CRC-32C, a serialized
/// `tensorflow.Event`, the data's masked CRC-32C); the first event names the format
/// ("brain.Event:2"), every other holds scalars of one step (`Summary.Value.simple_value`).
/// Each run (and each resume) starts a file of its own, as TensorFlow's writers do.
final class TensorBoardLog {
    private let handle: FileHandle
    let path: String
    private var pending = Data()

    /// Starts an event file in `folder` (created if needed).
    init(folder: String) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "host"
        path = "\(folder)/events.out.tfevents.\(Int(Date().timeIntervalSince1970)).\(host).\(getpid()).cgt"
        guard FileManager.default.createFile(atPath: path, contents: nil),
            let handle = FileHandle(forWritingAtPath: path)
        else {
            throw TrainingError("\(path): cannot create the TensorBoard event file")
        }
        self.handle = handle
        var event = Self.eventHeader(step: 0)
        Self.appendBytes(&event, field: 3, Array("brain.Event:2".utf8))
        append(event)
        try flush()
    }

    deinit { try? handle.close() }

    /// Records `values` (tag, value) at `step`; kept in memory until `flush`.
    func scalars(_ values: [(tag: String, value: Double)], step: Int) {
        var summary = [UInt8]()
        for (tag, value) in values where value.isFinite {
            var entry = [UInt8]()
            Self.appendBytes(&entry, field: 1, Array(tag.utf8))
            entry.append(0x15)  // field 2, fixed32: simple_value
            withUnsafeBytes(of: Float(value).bitPattern.littleEndian) { entry.append(contentsOf: $0) }
            Self.appendBytes(&summary, field: 1, entry)
        }
        var event = Self.eventHeader(step: step)
        Self.appendBytes(&event, field: 5, summary)
        append(event)
        if pending.count > 1 << 16 { try? flush() }
    }

    /// Writes what is pending; TensorBoard reads a file while it grows.
    func flush() throws {
        guard !pending.isEmpty else { return }
        do {
            try handle.write(contentsOf: pending)
        } catch {
            throw FileError(operation: "write", path: path, underlying: error)
        }
        pending.removeAll(keepingCapacity: true)
    }

    private func append(_ event: [UInt8]) {
        var length = UInt64(event.count).littleEndian
        let lengthBytes = withUnsafeBytes(of: &length) { Array($0) }
        pending.append(contentsOf: lengthBytes)
        withUnsafeBytes(of: Self.maskedCRC(lengthBytes).littleEndian) { pending.append(contentsOf: $0) }
        pending.append(contentsOf: event)
        withUnsafeBytes(of: Self.maskedCRC(event).littleEndian) { pending.append(contentsOf: $0) }
    }

    /// `wall_time` (field 1, double) and `step` (field 2, varint).
    private static func eventHeader(step: Int) -> [UInt8] {
        var event: [UInt8] = [0x09]
        withUnsafeBytes(of: Date().timeIntervalSince1970.bitPattern.littleEndian) { event.append(contentsOf: $0) }
        event.append(0x10)
        appendVarint(&event, UInt64(max(0, step)))
        return event
    }

    private static func appendVarint(_ bytes: inout [UInt8], _ value: UInt64) {
        var rest = value
        while rest >= 0x80 {
            bytes.append(UInt8(rest & 0x7f) | 0x80)
            rest >>= 7
        }
        bytes.append(UInt8(rest))
    }

    /// A length-delimited field (wire type 2).
    private static func appendBytes(_ bytes: inout [UInt8], field: Int, _ value: [UInt8]) {
        appendVarint(&bytes, UInt64(field << 3 | 2))
        appendVarint(&bytes, UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    /// CRC-32C (Castagnoli), masked as TFRecord masks it so a CRC of CRCs stays distinctive.
    static func maskedCRC(_ bytes: [UInt8]) -> UInt32 {
        let crc = crc32c(bytes)
        return ((crc >> 15) | (crc << 17)) &+ 0xa282_ead8
    }

    static func crc32c(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xffff_ffff
        for byte in bytes { crc = crcTable[Int((crc ^ UInt32(byte)) & 0xff)] ^ (crc >> 8) }
        return ~crc
    }

    private static let crcTable: [UInt32] = (0..<256).map { index in
        var value = UInt32(index)
        for _ in 0..<8 { value = value & 1 == 1 ? (value >> 1) ^ 0x82f6_3b78 : value >> 1 }
        return value
    }
}
