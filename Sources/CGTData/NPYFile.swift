import CGTFiles

/// A `.npy` array, a file or a member of a `.npz` archive, whose rows are read from disk as
/// they are needed, not loaded whole.
///
/// The header is parsed and checked by `NPYReader` exactly as for an array read into memory;
/// rows are then read with `pread` and converted to `Float` by the conversion `NumericArray`
/// uses, so a row read here is bitwise the row `NPYReader.read(...).floatValues()` would hold.
/// A stored archive member is read in place; a deflated one is first unpacked into a temporary
/// file (deflate cannot be entered mid-stream, and every pass over X would inflate it again).
/// A Fortran-order array is read in place too: a span of rows is one `pread` per feature
/// column, so a block still costs `rowWidth` reads of a few kilobytes, not one per value.
final class NPYFile {
    /// The file named on the command line (the archive, for a member): what provenance
    /// records, and what must not change while it is read.
    let source: SourceHandle
    /// Where the array's bytes are read: `source`, or the temporary a deflated member was unpacked into.
    private let data: SourceHandle
    /// The file, or `file:member` for an archive member: what errors about its values name.
    let location: String
    /// Rows first: `arrayShape` with its leading `rowAxes` merged into one.
    let shape: [Int]
    /// The shape the file gives.
    let arrayShape: [Int]
    let elementType: NumericArray.ElementType
    let isBigEndian: Bool
    /// Elements per row (all axes but the first).
    let rowWidth: Int
    private let dataStart: Int
    /// For a Fortran-order array, the column of the file (Fortran index over the feature axes)
    /// holding each feature in C order; empty in C order.
    private let fortranColumns: [Int]
    /// Where spans of consecutive rows are read: `blockBytes` of the caller, or one row.
    private let scratch: UnsafeMutableRawBufferPointer
    /// One column of a span of Fortran-order rows, converted.
    private let column: UnsafeMutableBufferPointer<Float>
    /// Rows converted per block by `forEachBlock`.
    let blockRows: Int

    /// Opens the array `specification` names (`X.npy`, `data.npz:X` or a one-array `data.npz`,
    /// as `NumPyInput` reads them) with its rows read in place. Nil when the file cannot be
    /// opened or holds a 0-d array, which the caller reads whole to name the problem; a bad
    /// header or archive throws, naming the file as reading it whole would.
    /// - Parameters:
    ///   - blockBytes: about the bytes of source rows read, and of `Float`s converted, at a
    ///     time (at least one row).
    ///   - rowAxes: the leading axes whose elements are the rows: 1, or 2 for the pixels of a
    ///     cube `[H, W, B]` (in Fortran order copied into a temporary file in C order first,
    ///     `unpackFortranPixels`); nil for an array with no more axes than that.
    static func openIfStreamable(_ specification: String, blockBytes: Int, rowAxes: Int = 1) throws -> NPYFile? {
        let (path, member) = NumPyInput.parse(specification)
        guard let source = SourceHandle.openIfRegular(path) else { return nil }
        let start = try source.bytes(at: 0, count: min(4, source.size))
        guard NumPyInput.isArchive(path: path, start: start) else {
            guard member == nil else {
                throw DatasetError(file: path, object: "", "is not a .npz archive, so it has no array '\(member!)'")
            }
            return try open(
                source: source, data: source, range: 0..<source.size, location: path, object: "",
                blockBytes: blockBytes, rowAxes: rowAxes)
        }
        let read = { (offset: Int, count: Int) in try source.bytes(at: offset, count: count) }
        let members = try NPZArchive.readCentralDirectory(size: source.size, path: path, read: read)
        let (entry, name) = try NPZArchive.member(named: member, in: members, path: path)
        let range = try NPZArchive.dataRange(of: entry, size: source.size, path: path, read: read)
        let data: SourceHandle
        let unpacked: Range<Int>
        var crc = NPZArchive.emptyCRC
        if entry.method == 0 {
            try source.forEachPiece(of: range) { crc = NPZArchive.crc32(of: $0, continuing: crc) }
            (data, unpacked) = (source, range)
        } else {
            let inflater = try GzipInflater(source, range: range, format: .rawDeflate, object: entry.name)
            data = try SourceHandle.temporary(holdingDataOf: path, inflating: inflater, count: entry.uncompressedSize) {
                crc = NPZArchive.crc32(of: $0, continuing: crc)
            }
            guard data.written == entry.uncompressedSize else {
                throw DatasetError(
                    file: path, object: entry.name,
                    "decompresses to \(data.written) bytes, expected \(entry.uncompressedSize)")
            }
            try inflater.expectEnd(afterCount: entry.uncompressedSize)
            unpacked = 0..<data.written
        }
        try entry.checkCRC(crc, path: path)
        return try open(
            source: source, data: data, range: unpacked, location: "\(path):\(name)", object: entry.name,
            blockBytes: blockBytes, rowAxes: rowAxes)
    }

    /// The `.npy` bytes at `range` of `data`; header errors name the source and `object`.
    private static func open(
        source: SourceHandle, data: SourceHandle, range: Range<Int>, location: String, object: String,
        blockBytes: Int, rowAxes: Int
    ) throws -> NPYFile? {
        let fail = { (problem: String) in DatasetError(file: source.path, object: object, problem) }
        let preamble = try data.bytes(at: range.lowerBound, count: min(range.count, NPYReader.preambleSize))
        let headerRange = try NPYReader.headerRange(preamble, fail: fail)
        guard headerRange.upperBound <= range.count else {
            _ = try NPYReader.header(preamble, fileSize: range.count, fail: fail)
            preconditionFailure("a header beyond the file passed its check")
        }
        let headerBytes = try data.bytes(at: range.lowerBound, count: headerRange.upperBound)
        let (header, dataStart) = try NPYReader.header(headerBytes, fileSize: range.count, fail: fail)
        guard header.shape.count > (rowAxes == 1 ? 0 : rowAxes) else { return nil }
        let rows = [header.shape.prefix(rowAxes).reduce(1, *)] + header.shape.dropFirst(rowAxes)
        if rowAxes > 1 && header.fortranOrder {
            precondition(rowAxes == 2, "only the pixels of an image are rows of more than one axis")
            let pixels = try unpackFortranPixels(
                data, dataStart: range.lowerBound + dataStart, shape: header.shape, elementType: header.elementType,
                blockBytes: blockBytes, source: source.path)
            return NPYFile(
                source: source, data: pixels, location: location, shape: rows, elementType: header.elementType,
                isBigEndian: header.isBigEndian, fortranOrder: false, dataStart: 0, blockBytes: blockBytes,
                arrayShape: header.shape)
        }
        return NPYFile(
            source: source, data: data, location: location, shape: rows, elementType: header.elementType,
            isBigEndian: header.isBigEndian, fortranOrder: header.fortranOrder, dataStart: range.lowerBound + dataStart,
            blockBytes: blockBytes, arrayShape: header.shape)
    }

    /// The array of `shape` whose data starts at `dataStart` of `data`.
    init(
        source: SourceHandle, data: SourceHandle, location: String, shape: [Int], elementType: NumericArray.ElementType,
        isBigEndian: Bool, fortranOrder: Bool, dataStart: Int, blockBytes: Int, arrayShape: [Int]? = nil
    ) {
        self.arrayShape = arrayShape ?? shape
        self.source = source
        self.data = data
        self.location = location
        self.dataStart = dataStart
        self.shape = shape
        self.elementType = elementType
        self.isBigEndian = isBigEndian
        rowWidth = shape.dropFirst().reduce(1, *)
        let rowBytes = rowWidth * elementType.size
        scratch = .allocate(byteCount: max(blockBytes, rowBytes, 1), alignment: 64)
        blockRows = max(1, blockBytes / max(1, rowWidth * MemoryLayout<Float>.size))
        if fortranOrder && shape.count > 2 {
            let axes = Array(shape.dropFirst())
            var strides = [Int](repeating: 1, count: axes.count)
            for axis in 1..<axes.count { strides[axis] = strides[axis - 1] * axes[axis - 1] }
            fortranColumns = (0..<rowWidth).map { feature in
                var rest = feature
                var column = 0
                for axis in axes.indices.reversed() {
                    column += (rest % axes[axis]) * strides[axis]
                    rest /= axes[axis]
                }
                return column
            }
        } else if fortranOrder && shape.count == 2 {
            fortranColumns = Array(0..<rowWidth)
        } else {
            fortranColumns = []
        }
        column = .allocate(capacity: fortranColumns.isEmpty ? 0 : max(1, scratch.count / max(1, rowBytes)))
    }

    deinit {
        scratch.deallocate()
        column.deallocate()
    }

    /// Calls `body` with the rows `sourceRows` (ascending) converted to `Float`, `blockRows` at
    /// a time, and the position in `sourceRows` of each block's first row.
    func forEachBlock(
        _ sourceRows: [Int], _ body: (_ start: Int, UnsafeMutableBufferPointer<Float>) throws -> Void
    ) throws {
        let rows = min(blockRows, sourceRows.count)
        let block = UnsafeMutableBufferPointer<Float>.allocate(capacity: rows * rowWidth)
        defer { block.deallocate() }
        for start in stride(from: 0, to: sourceRows.count, by: blockRows) {
            let end = min(sourceRows.count, start + blockRows)
            let part = UnsafeMutableBufferPointer(rebasing: block[0..<((end - start) * rowWidth)])
            try gather(sourceRows[start..<end], into: part)
            try body(start, part)
        }
    }

    /// The whole array in memory, in C order: labels, which a streamed preparation holds whole.
    func array() throws -> NumericArray {
        let count = shape.reduce(1, *) * elementType.size
        if let refusal = MemoryBudget.refusal([count], elementSize: 1) {
            throw DatasetError(
                file: location, object: "", "holds \(MemoryBudget.describe(count)): reading it \(refusal)")
        }
        var bytes = try data.bytes(at: dataStart, count: count)
        if !fortranColumns.isEmpty {
            bytes = NPYReader.transposeFortranToC(bytes, shape: arrayShape, elementSize: elementType.size)
        }
        return NumericArray(shape: arrayShape, elementType: elementType, isBigEndian: isBigEndian, bytes: bytes)
    }

    var rowCount: Int { shape[0] }
    var rowBytes: Int { rowWidth * elementType.size }

    /// Reads the rows `sourceRows` (ascending) into `output`, `sourceRows.count * rowWidth`
    /// values: a span of consecutive source rows at a time, each read with one `pread` (one
    /// per feature column in Fortran order).
    func gather(_ sourceRows: ArraySlice<Int>, into output: UnsafeMutableBufferPointer<Float>) throws {
        precondition(output.count >= sourceRows.count * rowWidth, "output too small for \(sourceRows.count) rows")
        guard rowBytes > 0 else { return }
        let spanRows = scratch.count / rowBytes
        precondition(spanRows >= 1, "scratch of \(scratch.count) bytes for rows of \(rowBytes)")
        var position = sourceRows.startIndex
        var written = 0
        while position < sourceRows.endIndex {
            let first = sourceRows[position]
            var end = position + 1
            while end < sourceRows.endIndex && sourceRows[end] - first < spanRows { end += 1 }
            let span = sourceRows[end - 1] - first + 1
            if fortranColumns.isEmpty {
                let bytes = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<(span * rowBytes)])
                try data.read(at: dataStart + first * rowBytes, into: bytes)
                for row in sourceRows[position..<end] {
                    let from = UnsafeRawBufferPointer(
                        rebasing: bytes[((row - first) * rowBytes)..<((row - first + 1) * rowBytes)])
                    let to = UnsafeMutableBufferPointer(
                        rebasing: output[(written * rowWidth)..<((written + 1) * rowWidth)])
                    NumericArray.convert(from, elementType, isBigEndian: isBigEndian, into: to)
                    written += 1
                }
            } else {
                try gatherFortran(sourceRows[position..<end], first: first, span: span, into: output, at: written)
                written += end - position
            }
            position = end
        }
    }

    /// `gather` of rows within `span` rows from `first`, in Fortran order: column `c` of the
    /// span is read into the scratch at `c * span` elements, then each feature's column is
    /// converted and dealt out to the rows.
    private func gatherFortran(
        _ rows: ArraySlice<Int>, first: Int, span: Int, into output: UnsafeMutableBufferPointer<Float>,
        at written: Int
    ) throws {
        let size = elementType.size
        let columnBytes = span * size
        for file in 0..<rowWidth {
            let bytes = UnsafeMutableRawBufferPointer(
                rebasing: scratch[(file * columnBytes)..<((file + 1) * columnBytes)])
            try data.read(at: dataStart + (file * rowCount + first) * size, into: bytes)
        }
        let values = UnsafeMutableBufferPointer(rebasing: column[0..<span])
        for (feature, file) in fortranColumns.enumerated() {
            let bytes = UnsafeRawBufferPointer(rebasing: scratch[(file * columnBytes)..<((file + 1) * columnBytes)])
            NumericArray.convert(bytes, elementType, isBigEndian: isBigEndian, into: values)
            for (offset, row) in rows.enumerated() {
                output[(written + offset) * rowWidth + feature] = values[row - first]
            }
        }
    }
}
