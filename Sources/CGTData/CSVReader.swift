/// Reads a CSV file with a header row into numeric features and label strings.
///
/// Fields follow RFC 4180: separated by the delimiter, optionally in double quotes (a doubled
/// quote inside stands for one), records ended by LF or CRLF; blank lines are skipped and a
/// UTF-8 byte-order mark is ignored. Every column except the label column and any dropped
/// columns is a feature and must hold a finite number; an error names the line and column.
public enum CSVReader {
    public struct Table {
        /// Names of the feature columns, in file order.
        public let featureColumns: [String]
        /// `[rows, featureColumns.count]` row-major.
        public let features: [Float]
        /// The label column's text, trimmed, one per row.
        public let labels: [String]
        /// The line of the file each row starts on (1-based).
        public let lines: [Int]

        public var rowCount: Int { labels.count }
    }

    public static func read(
        _ source: SourceFile, labelColumn: String, dropColumns: Set<String> = [], delimiter: UInt8 = UInt8(ascii: ",")
    ) throws -> Table {
        var records = RecordIterator(bytes: source.bytes, delimiter: delimiter)
        var features: [Float] = []
        var labels: [String] = []
        var lines: [Int] = []
        let columns = try scan(
            &records, path: source.path, labelColumn: labelColumn, dropColumns: dropColumns
        ) { line, values, label in
            features.append(contentsOf: values)
            labels.append(label)
            lines.append(line)
        }
        return Table(featureColumns: columns, features: features, labels: labels, lines: lines)
    }

    /// Reads the header, then hands `row` each data row's line, features and label, checked;
    /// returns the names of the feature columns. At least one row.
    static func scan(
        _ records: inout RecordIterator, path: String, labelColumn: String, dropColumns: Set<String>,
        row: (_ line: Int, _ features: [Float], _ label: String) throws -> Void
    ) throws -> [String] {
        guard let (_, headerFields) = try records.next(path: path) else {
            throw DatasetError(file: path, object: "", "is empty: a CSV file needs a header row")
        }
        let header = try headerFields.enumerated().map { column, field in
            try text(field, path: path, place: "line 1, column \(column + 1)").trimmed
        }
        var seen: Set<String> = []
        for name in header where !seen.insert(name).inserted {
            throw DatasetError(file: path, object: "line 1", "column name \(name.quotedForMessage) appears twice")
        }
        guard let labelIndex = header.firstIndex(of: labelColumn) else {
            let shown = header.prefix(10).map(\.quotedForMessage).joined(separator: ", ")
            throw DatasetError(
                file: path, object: "line 1",
                "has no column '\(labelColumn)' (columns: \(shown)\(header.count > 10 ? ", … \(header.count) in all" : ""))"
            )
        }
        if dropColumns.contains(labelColumn) {
            throw DatasetError(
                file: path, object: "line 1", "'\(labelColumn)' is the label column and cannot be dropped")
        }
        if let unknown = dropColumns.subtracting(header).sorted().first {
            throw DatasetError(file: path, object: "line 1", "has no column '\(unknown)' to drop")
        }
        let featureIndices = header.indices.filter { $0 != labelIndex && !dropColumns.contains(header[$0]) }
        guard !featureIndices.isEmpty else {
            throw DatasetError(file: path, object: "line 1", "has no feature columns besides '\(labelColumn)'")
        }
        var rows = 0
        var values: [Float] = []
        values.reserveCapacity(featureIndices.count)
        while let (line, fields) = try records.next(path: path) {
            guard fields.count == header.count else {
                throw DatasetError(
                    file: path, object: "line \(line)", "has \(fields.count) fields, the header has \(header.count)")
            }
            values.removeAll(keepingCapacity: true)
            for index in featureIndices {
                // No float32 needs more digits; a longer field is not worth decoding.
                guard fields[index].count <= Self.longestNumber else {
                    let start = String(decoding: fields[index].prefix(40), as: UTF8.self)
                    throw DatasetError(
                        file: path, object: "line \(line), column '\(header[index])'",
                        "'\(start)…' (\(fields[index].count) bytes) is not a number")
                }
                let text = String(decoding: fields[index], as: UTF8.self).trimmed
                guard let value = Double(text) else {
                    let shown = text.isEmpty ? "an empty field" : text.quotedForMessage
                    throw DatasetError(
                        file: path, object: "line \(line), column '\(header[index])'", "\(shown) is not a number")
                }
                let stored = Float(value)
                guard stored.isFinite else {
                    throw DatasetError(
                        file: path, object: "line \(line), column '\(header[index])'",
                        "value \(text) is not finite in float32 (NaN, infinite, or beyond ±3.4e38)")
                }
                values.append(stored)
            }
            let label = try text(fields[labelIndex], path: path, place: "line \(line), column '\(labelColumn)'").trimmed
            guard !label.isEmpty else {
                throw DatasetError(file: path, object: "line \(line), column '\(labelColumn)'", "the label is empty")
            }
            try row(line, values, label)
            rows += 1
        }
        guard rows > 0 else { throw DatasetError(file: path, object: "", "has a header but no data rows") }
        return featureIndices.map { header[$0] }
    }

    /// The longest field read as a number (digits of a float64 written out in full fit).
    static let longestNumber = 400

    /// A field as text, refused when it is not UTF-8 (class names and column names are stored as UTF-8).
    private static func text(_ field: ArraySlice<UInt8>, path: String, place: String) throws -> String {
        guard let text = String(validating: field, as: UTF8.self) else {
            throw DatasetError(file: path, object: place, "is not UTF-8 text")
        }
        return text
    }

    /// Splits the bytes of a CSV file into records of fields: bytes in memory, or a file read a
    /// piece at a time (a record cut by the end of what is read is parsed again once more is).
    struct RecordIterator {
        private(set) var bytes: [UInt8]
        let delimiter: UInt8
        var position = 0
        var line = 1
        /// The rest of the file, a piece at a time (empty at its end); nil when `bytes` is all of it.
        private var more: (() throws -> [UInt8])?

        init(bytes: [UInt8], delimiter: UInt8) {
            self.bytes = bytes
            self.delimiter = delimiter
            if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { position = 3 }
        }

        /// The records of the file `source` reads, `pieceBytes` at a time.
        init(_ source: SourceHandle, delimiter: UInt8, pieceBytes: Int) throws {
            var offset = 0
            let more = {
                let count = min(max(1, pieceBytes), source.size - offset)
                defer { offset += count }
                return try source.bytes(at: offset, count: count)
            }
            self.init(bytes: try more(), delimiter: delimiter)
            self.more = more
            if bytes.isEmpty { self.more = nil }
        }

        /// Thrown where a record runs past what has been read of the file.
        private struct NeedsMore: Error {}

        /// Whether the file has a byte at `index` of `bytes`.
        private func has(_ index: Int) throws -> Bool {
            if index < bytes.count { return true }
            if more == nil { return false }
            throw NeedsMore()
        }

        /// The next non-blank record and the line it starts on, or nil at the end of the file.
        mutating func next(path: String) throws -> (Int, [ArraySlice<UInt8>])? {
            while true {
                let (start, startLine) = (position, line)
                do {
                    return try parseNext(path: path)
                } catch is NeedsMore {
                    (position, line) = (start, startLine)
                    let piece = try more!()
                    bytes = Array(bytes[position...]) + piece
                    position = 0
                    if piece.isEmpty { more = nil }
                }
            }
        }

        private mutating func parseNext(path: String) throws -> (Int, [ArraySlice<UInt8>])? {
            while try has(position) {
                let start = line
                var fields: [ArraySlice<UInt8>] = []
                var atRecordEnd = false
                while !atRecordEnd {
                    if try has(position) && bytes[position] == UInt8(ascii: "\"") {
                        fields.append(try quotedField(path: path, startLine: start))
                    } else {
                        let fieldStart = position
                        while try has(position), bytes[position] != delimiter, bytes[position] != 0x0A {
                            position += 1
                        }
                        var fieldEnd = position
                        if try fieldEnd > fieldStart && bytes[fieldEnd - 1] == 0x0D
                            && (!has(position) || bytes[position] == 0x0A)
                        {
                            fieldEnd -= 1
                        }
                        fields.append(bytes[fieldStart..<fieldEnd])
                    }
                    if try has(position) && bytes[position] == delimiter {
                        position += 1
                    } else {
                        if try has(position) {
                            position += 1
                            line += 1
                        }
                        atRecordEnd = true
                    }
                }
                if fields.count == 1 && fields[0].allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
                return (start, fields)
            }
            return nil
        }

        /// A field in double quotes starting at `position`; leaves `position` after the closing quote.
        private mutating func quotedField(path: String, startLine: Int) throws -> ArraySlice<UInt8> {
            position += 1
            var value: [UInt8] = []
            while true {
                guard try has(position) else {
                    throw DatasetError(
                        file: path, object: "line \(startLine)",
                        "a quoted field is not closed before the end of the file")
                }
                let byte = bytes[position]
                position += 1
                if byte == UInt8(ascii: "\"") {
                    if try has(position) && bytes[position] == UInt8(ascii: "\"") {
                        value.append(byte)
                        position += 1
                        continue
                    }
                    while try has(position), bytes[position] == 0x20 || bytes[position] == 0x0D { position += 1 }
                    guard try !has(position) || bytes[position] == delimiter || bytes[position] == 0x0A else {
                        throw DatasetError(file: path, object: "line \(line)", "unexpected text after a closing quote")
                    }
                    return value[...]
                }
                if byte == 0x0A { line += 1 }
                value.append(byte)
            }
        }
    }
}
