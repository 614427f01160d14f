import Foundation

/// The most memory one buffer sized by untrusted input may take: a dataset or tensor read
/// from a file, or a batch or sample count given on the command line.
///
/// Files declare sizes they need not hold (a chunked HDF5 dataset of 2^40 rows costs a
/// millisecond to make); every such size is multiplied out with overflow checked and compared
/// with this budget before anything is allocated, so bad input is a one-line error, never an
/// allocation that takes a cluster node's memory. Default: half the machine's physical memory;
/// `CGT_MEMORY_LIMIT` (bytes, or with a K, M, G or T suffix) sets another.
public enum MemoryBudget {
    public static let bytes: Int = {
        if let text = ProcessInfo.processInfo.environment["CGT_MEMORY_LIMIT"] {
            if let value = parse(text) { return value }
            FileHandle.standardError.write(
                Data(
                    "cgt: warning: CGT_MEMORY_LIMIT='\(text)' is not a size (8G, 512M, 1048576); using half the memory\n"
                        .utf8))
        }
        return Int(clamping: ProcessInfo.processInfo.physicalMemory / 2)
    }()

    /// Whether `CGT_MEMORY_LIMIT` set the limit (per process), rather than the default of half
    /// the machine's memory (shared by every rank on it).
    public static let isSetByUser = ProcessInfo.processInfo.environment["CGT_MEMORY_LIMIT"].flatMap(parse) != nil

    /// "8G", "512M", "1048576": bytes (nil for anything else).
    public static func parse(_ text: String) -> Int? {
        let units: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
        let trimmed = text.trimmingCharacters(in: .whitespaces).uppercased()
        guard let last = trimmed.last else { return nil }
        let (digits, unit) = units[last].map { (String(trimmed.dropLast()), $0) } ?? (trimmed, 1)
        guard let value = Int(digits), value > 0 else { return nil }
        let (product, overflow) = value.multipliedReportingOverflow(by: unit)
        return overflow ? nil : product
    }

    /// The product of `counts` times `elementSize`, or nil when it overflows or a count is negative.
    public static func byteCount(_ counts: [Int], elementSize: Int) -> Int? {
        var total = elementSize
        for count in counts {
            guard count >= 0 else { return nil }
            let (product, overflow) = total.multipliedReportingOverflow(by: count)
            if overflow { return nil }
            total = product
        }
        return total
    }

    /// Nil when `counts` elements of `elementSize` bytes fit the budget, else why not, in words.
    public static func refusal(_ counts: [Int], elementSize: Int) -> String? {
        guard let bytes = byteCount(counts, elementSize: elementSize) else {
            return "\(counts.map(String.init).joined(separator: " x ")) elements overflow a 64-bit size"
        }
        guard bytes > Self.bytes else { return nil }
        return "needs \(describe(bytes)), more than the memory limit of \(describe(Self.bytes)) (CGT_MEMORY_LIMIT)"
    }

    /// The shortest spelling `parse` reads back as `bytes` ("256M", "3G", "1000").
    public static func spelled(_ bytes: Int) -> String {
        for (unit, size) in [("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)]
        where bytes % size == 0 {
            return "\(bytes / size)\(unit)"
        }
        return "\(bytes)"
    }

    /// "1.5 GiB".
    public static func describe(_ bytes: Int) -> String {
        let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(bytes) bytes" : String(format: "%.1f %@", value, units[unit])
    }
}
