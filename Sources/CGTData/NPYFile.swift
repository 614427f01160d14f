#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A C-order `.npy` file whose rows are read from the file as they are needed, not loaded whole.
///
/// The header is parsed and checked by `NPYReader` exactly as for a file read into memory; rows
/// are then read with `pread` and converted to `Float` by the conversion `NumericArray` uses,
/// so a row read here is bitwise the row `NPYReader.read(...).floatValues()` would hold.
final class NPYFile {
    let path: String
    let shape: [Int]
    let elementType: NumericArray.ElementType
    let isBigEndian: Bool
    /// Elements per row (all axes but the first).
    let rowWidth: Int
    let fileSize: Int
    private let descriptor: Int32
    private let dataStart: Int
    /// Where spans of consecutive rows are read: `blockBytes` of the caller, or one row.
    private let scratch: UnsafeMutableRawBufferPointer
    /// Rows converted per block by `forEachBlock`.
    let blockRows: Int

    /// Opens `path` when it is a `.npy` file whose rows can be read in place: C order, at least
    /// one axis. Nil for anything else (an archive, a Fortran-order array), which the caller
    /// reads whole; a `.npy` file with a bad header throws, naming the file.
    /// - Parameter blockBytes: about the bytes of source rows read, and of `Float`s converted,
    ///   at a time (at least one row).
    static func openIfStreamable(_ path: String, blockBytes: Int) throws -> NPYFile? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        var status = stat()
        guard fstat(descriptor, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else {
            close(descriptor)
            return nil
        }
        let size = Int(status.st_size)
        do {
            let fail = { (problem: String) in DatasetError(file: path, object: "", problem) }
            var preamble = [UInt8](repeating: 0, count: min(size, NPYReader.preambleSize))
            try preamble.withUnsafeMutableBytes { try read(descriptor, path: path, at: 0, into: $0) }
            guard preamble.starts(with: NPYReader.magic), !path.hasSuffix(".npz") else {
                close(descriptor)
                return nil
            }
            let range = try NPYReader.headerRange(preamble, fail: fail)
            guard range.upperBound <= size else {
                _ = try NPYReader.header(preamble, fileSize: size, fail: fail)
                preconditionFailure("a header beyond the file passed its check")
            }
            var headerBytes = [UInt8](repeating: 0, count: range.upperBound)
            try headerBytes.withUnsafeMutableBytes { try read(descriptor, path: path, at: 0, into: $0) }
            let (header, dataStart) = try NPYReader.header(headerBytes, fileSize: size, fail: fail)
            guard !header.fortranOrder || header.shape.count < 2, !header.shape.isEmpty else {
                close(descriptor)
                return nil
            }
            return NPYFile(
                path: path, descriptor: descriptor, header: header, dataStart: dataStart, fileSize: size,
                blockBytes: blockBytes)
        } catch {
            close(descriptor)
            throw error
        }
    }

    private init(
        path: String, descriptor: Int32, header: NPYHeader, dataStart: Int, fileSize: Int, blockBytes: Int
    ) {
        self.path = path
        self.descriptor = descriptor
        self.dataStart = dataStart
        self.fileSize = fileSize
        shape = header.shape
        elementType = header.elementType
        isBigEndian = header.isBigEndian
        rowWidth = header.shape.dropFirst().reduce(1, *)
        let rowBytes = rowWidth * header.elementType.size
        scratch = .allocate(byteCount: max(blockBytes, rowBytes, 1), alignment: 64)
        blockRows = max(1, blockBytes / max(1, rowWidth * MemoryLayout<Float>.size))
    }

    deinit {
        scratch.deallocate()
        close(descriptor)
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

    var rowCount: Int { shape[0] }
    var rowBytes: Int { rowWidth * elementType.size }

    /// Reads the rows `sourceRows` (ascending) into `output`, `sourceRows.count * rowWidth`
    /// values: a span of consecutive source rows at a time, each read with one `pread`.
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
            let last = sourceRows[end - 1]
            let span = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<((last - first + 1) * rowBytes)])
            try Self.read(descriptor, path: path, at: dataStart + first * rowBytes, into: span)
            for row in sourceRows[position..<end] {
                let from = UnsafeRawBufferPointer(
                    rebasing: span[((row - first) * rowBytes)..<((row - first + 1) * rowBytes)])
                let to = UnsafeMutableBufferPointer(rebasing: output[(written * rowWidth)..<((written + 1) * rowWidth)])
                NumericArray.convert(from, elementType, isBigEndian: isBigEndian, into: to)
                written += 1
            }
            position = end
        }
    }

    /// Fills `buffer` from `offset`. Wraps `pread`.
    private static func read(
        _ descriptor: Int32, path: String, at offset: Int, into buffer: UnsafeMutableRawBufferPointer
    )
        throws
    {
        var done = 0
        while done < buffer.count {
            let count = pread(descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if count < 0 {
                if errno == EINTR { continue }
                throw DatasetError(file: path, object: "", "cannot read (\(String(cString: strerror(errno))))")
            }
            if count == 0 { throw DatasetError(file: path, object: "", "file shrank while being read") }
            done += count
        }
    }
}
