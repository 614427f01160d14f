import CGTFiles
import CHDF5

/// A dataset: an n-dimensional array of numbers stored in row-major order.
///
/// Rows are slices along axis 0, which is how cgt stores samples (`/train/x` is
/// `[samples, features...]`); the row reads are what a data loader calls per batch. Shape,
/// type and storage layout are read once when the dataset is opened.
public final class HDF5Dataset: HDF5Object {
    /// Extent of each axis.
    public let shape: [Int]
    /// Element type as stored in the file.
    public let elementType: HDF5ElementType
    /// Chunk extent of each axis, or nil for contiguous (or compact) storage.
    public let chunkShape: [Int]?
    private let storedSize: Int
    /// Names of the filters in the chunk pipeline, in order, e.g. ["shuffle", "deflate"].
    public let filters: [String]
    /// The filters of `filters` this HDF5 cannot decode (no built-in and no plugin found):
    /// reading the data would fail.
    public let unavailableFilters: [HDF5Filter]
    /// Where the data lives when not in this file ("external storage in /etc/passwd", "a
    /// virtual dataset of other files"); nil when the file holds it.
    public let storedElsewhere: String?

    init(file: HDF5File, path: String, adopting id: hid_t) throws {
        let layout: Layout
        do {
            layout = try Layout(dataset: id, file: file.path, object: path)
        } catch {
            H5Dclose(id)
            throw error
        }
        shape = layout.shape
        guard MemoryBudget.byteCount(shape, elementSize: 1) != nil else {
            H5Dclose(id)
            throw HDF5Error(
                operation: "open", file: file.path, object: path, message: "shape \(shape) overflows a 64-bit size")
        }
        elementType = layout.elementType
        chunkShape = layout.chunkShape
        storedSize = layout.storedSize
        filters = layout.filters
        unavailableFilters = layout.unavailableFilters
        storedElsewhere = layout.storedElsewhere
        super.init(file: file, path: path, id: id)
    }

    /// Number of elements in the whole dataset.
    public var elementCount: Int { shape.reduce(1, *) }

    /// Number of elements in one row (one index along axis 0).
    public var rowElementCount: Int { shape.dropFirst().reduce(1, *) }

    /// Reads the whole dataset, converting the stored type to `T`.
    ///
    /// Wraps `H5Dread`.
    public func read<T: HDF5Scalar>(into buffer: UnsafeMutableBufferPointer<T>) throws {
        precondition(
            buffer.count == elementCount, "\(path): buffer holds \(buffer.count) elements, dataset \(elementCount)")
        guard let base = buffer.baseAddress, elementCount > 0 else { return }
        try checkChunkBudget()
        try check(H5Dread(id, T.nativeTypeID, chdf5_s_all(), chdf5_s_all(), chdf5_p_default(), base), "H5Dread")
    }

    /// Reads the whole dataset into a new array, after checking its declared size against
    /// `MemoryBudget` (a file may declare far more than it holds).
    public func readAll<T: HDF5Scalar>(as type: T.Type) throws -> [T] {
        if let refusal = MemoryBudget.refusal(shape, elementSize: MemoryLayout<T>.stride) {
            throw HDF5Error(operation: "read", file: file.path, object: path, message: "shape \(shape) \(refusal)")
        }
        return try [T](unsafeUninitializedCapacity: elementCount) { buffer, initialized in
            try read(into: buffer)
            initialized = elementCount
        }
    }

    /// Reads the rows `rows` (all of every other axis); rows outside the dataset throw.
    ///
    /// Wraps `H5Sselect_hyperslab` and `H5Dread`.
    public func read<T: HDF5Scalar>(rows: Range<Int>, into buffer: UnsafeMutableBufferPointer<T>) throws {
        try checkRows(rows, "H5Dread")
        precondition(
            buffer.count == rows.count * rowElementCount,
            "\(path): buffer holds \(buffer.count) elements, \(rows.count) rows need \(rows.count * rowElementCount)")
        try readRuns([rows], into: buffer)
    }

    /// Reads the rows at `rowIndices`, in that order, into consecutive rows of `buffer`.
    ///
    /// Indices may be unsorted and may repeat: the distinct rows are read in one call, in file
    /// order (which HDF5 requires of a selection), and then placed where they were asked for.
    /// An index outside the dataset throws.
    /// - Complexity: one `H5Dread` of the distinct rows, plus a copy when `rowIndices` is not
    ///   strictly increasing.
    public func read<T: HDF5Scalar>(rowIndices: [Int], into buffer: UnsafeMutableBufferPointer<T>) throws {
        try checkRows(0..<0, "H5Dread")
        let width = rowElementCount
        precondition(
            buffer.count == rowIndices.count * width,
            "\(path): buffer holds \(buffer.count) elements, \(rowIndices.count) rows need \(rowIndices.count * width)")
        if let bad = rowIndices.first(where: { $0 < 0 || $0 >= shape[0] }) {
            throw error("H5Dread", "row index \(bad) is out of range: the dataset has \(shape[0]) rows")
        }
        let distinct = Array(Set(rowIndices)).sorted()
        var runs: [Range<Int>] = []
        for row in distinct {
            if let last = runs.last, last.upperBound == row {
                runs[runs.count - 1] = last.lowerBound..<(row + 1)
            } else {
                runs.append(row..<(row + 1))
            }
        }
        if distinct == rowIndices {
            try readRuns(runs, into: buffer)
            return
        }
        let staging = try [T](unsafeUninitializedCapacity: distinct.count * width) { staging, initialized in
            try readRuns(runs, into: staging)
            initialized = staging.count
        }
        guard width > 0, let destination = buffer.baseAddress else { return }
        let position = Dictionary(uniqueKeysWithValues: distinct.enumerated().map { ($0.element, $0.offset) })
        staging.withUnsafeBufferPointer { source in
            for (slot, row) in rowIndices.enumerated() {
                (destination + slot * width).update(from: source.baseAddress! + position[row]! * width, count: width)
            }
        }
    }

    /// Bytes of the element type as stored (1 for uint8, 4 for float32).
    public var storedElementSize: Int { storedSize }

    /// What reading `rows` costs in the file: the stored (compressed) bytes of every chunk
    /// that holds one of them, and those chunks' bytes once decompressed.
    ///
    /// A chunk is decompressed whole, so a read of one row pays for its chunk. For chunks that
    /// span every axis but the first (as cgt writes them) the stored size is asked per chunk
    /// (`H5Dget_chunk_storage_size`); for other chunk shapes, and for contiguous data, it is
    /// the dataset's stored size in proportion to the rows (`H5Dget_storage_size`).
    public func readCost(rows: Range<Int>) throws -> (stored: Int, decompressed: Int) {
        guard !rows.isEmpty, !shape.isEmpty else { return (0, 0) }
        let rowBytes = rowElementCount * storedElementSize
        guard let chunk = chunkShape, Array(chunk.dropFirst()) == Array(shape.dropFirst()), chunk[0] > 0 else {
            let total = Int(H5Dget_storage_size(id))
            let bytes = rows.count * rowBytes
            let stored = shape[0] > 0 ? Int(Double(total) * Double(rows.count) / Double(shape[0])) : 0
            return (stored, bytes)
        }
        let first = rows.lowerBound / chunk[0]
        let last = (rows.upperBound - 1) / chunk[0]
        var stored = 0
        var decompressed = 0
        var offset = [hsize_t](repeating: 0, count: shape.count)
        for index in first...last {
            offset[0] = hsize_t(index * chunk[0])
            var bytes: hsize_t = 0
            _ = try check(H5Dget_chunk_storage_size(id, offset, &bytes), "H5Dget_chunk_storage_size")
            stored += Int(bytes)
            decompressed += chunk[0] * rowBytes
        }
        return (stored, decompressed)
    }

    /// Writes the whole dataset, converting `T` to the stored type.
    ///
    /// Wraps `H5Dwrite`.
    public func write<T: HDF5Scalar>(_ buffer: UnsafeBufferPointer<T>) throws {
        precondition(
            buffer.count == elementCount, "\(path): buffer holds \(buffer.count) elements, dataset \(elementCount)")
        guard let base = buffer.baseAddress, elementCount > 0 else { return }
        try check(H5Dwrite(id, T.nativeTypeID, chdf5_s_all(), chdf5_s_all(), chdf5_p_default(), base), "H5Dwrite")
    }

    /// Writes the rows `rows` (all of every other axis); rows outside the dataset throw.
    ///
    /// Wraps `H5Sselect_hyperslab` and `H5Dwrite`.
    public func write<T: HDF5Scalar>(_ buffer: UnsafeBufferPointer<T>, rows: Range<Int>) throws {
        try checkRows(rows, "H5Dwrite")
        precondition(
            buffer.count == rows.count * rowElementCount,
            "\(path): buffer holds \(buffer.count) elements, \(rows.count) rows need \(rows.count * rowElementCount)")
        guard let base = buffer.baseAddress, !rows.isEmpty, rowElementCount > 0 else { return }
        try withRowSelection([rows]) { memory, file in
            try check(H5Dwrite(id, T.nativeTypeID, memory, file, chdf5_p_default(), base), "H5Dwrite")
        }
    }

    private func checkRows(_ rows: Range<Int>, _ operation: String) throws {
        precondition(!shape.isEmpty, "\(path): a scalar dataset has no rows")
        guard rows.lowerBound >= 0, rows.upperBound <= shape[0] else {
            throw error(operation, "rows \(rows) are out of range: the dataset has \(shape[0]) rows")
        }
    }

    /// Refuses a read when one chunk would not fit `MemoryBudget`: libhdf5 decompresses a chunk
    /// whole, into a buffer of the chunk's declared size, however few of its rows are asked for
    /// or the file holds (an extendible dataset's chunk may be far larger than its data: 64 rows
    /// in a chunk of 2^25, a megabyte stored, a gigabyte read).
    private func checkChunkBudget() throws {
        guard let chunkShape, let refusal = MemoryBudget.refusal(chunkShape, elementSize: storedSize) else { return }
        throw error("read", "its chunks of \(chunkShape) \(elementType) values are decompressed whole: one \(refusal)")
    }

    /// Reads the union of `runs` (sorted, disjoint row ranges) into consecutive rows of `buffer`.
    private func readRuns<T: HDF5Scalar>(_ runs: [Range<Int>], into buffer: UnsafeMutableBufferPointer<T>) throws {
        guard let base = buffer.baseAddress, !buffer.isEmpty else { return }
        try checkChunkBudget()
        try withRowSelection(runs) { memory, file in
            try check(H5Dread(id, T.nativeTypeID, memory, file, chdf5_p_default(), base), "H5Dread")
        }
    }

    /// Selects the union of `runs` in the file dataspace and passes it with a matching memory
    /// dataspace of `[total rows, other axes...]` to `body`.
    private func withRowSelection(_ runs: [Range<Int>], _ body: (_ memory: hid_t, _ file: hid_t) throws -> Void) throws
    {
        let fileSpace = try check(H5Dget_space(id), "H5Dget_space")
        defer { H5Sclose(fileSpace) }
        var start = [hsize_t](repeating: 0, count: shape.count)
        var count = shape.map { hsize_t($0) }
        for (index, run) in runs.enumerated() {
            start[0] = hsize_t(run.lowerBound)
            count[0] = hsize_t(run.count)
            let operation = index == 0 ? H5S_SELECT_SET : H5S_SELECT_OR
            try check(H5Sselect_hyperslab(fileSpace, operation, start, nil, count, nil), "H5Sselect_hyperslab")
        }
        var memoryShape = shape
        memoryShape[0] = runs.reduce(0) { $0 + $1.count }
        let memorySpace = try makeDataspace(shape: memoryShape)
        defer { H5Sclose(memorySpace) }
        try body(memorySpace, fileSpace)
    }
}

/// A filter of a dataset's chunk pipeline, by its registered id and name.
public struct HDF5Filter: Equatable, Sendable, CustomStringConvertible {
    public var id: Int
    public var name: String

    /// "lzf (filter id 32000)", or "filter id 32099" for a filter without a name.
    public var description: String { name == "filter \(id)" ? "filter id \(id)" : "\(name) (filter id \(id))" }
}

/// What `HDF5Dataset` reads once at open: extent, element type and storage layout.
private struct Layout {
    var shape: [Int]
    var elementType: HDF5ElementType
    var chunkShape: [Int]?
    var storedSize: Int
    var filters: [String]
    var unavailableFilters: [HDF5Filter] = []
    var storedElsewhere: String?

    init(dataset: hid_t, file: String, object: String) throws {
        func check<R: BinaryInteger>(_ result: @autoclosure () -> R, _ operation: String) throws -> R {
            try hdf5Check(result(), operation, file: file, object: object)
        }
        let space = try check(H5Dget_space(dataset), "H5Dget_space")
        defer { H5Sclose(space) }
        let rank = try check(H5Sget_simple_extent_ndims(space), "H5Sget_simple_extent_ndims")
        var dims = [hsize_t](repeating: 0, count: Int(rank))
        _ = try check(H5Sget_simple_extent_dims(space, &dims, nil), "H5Sget_simple_extent_dims")
        shape = dims.map { Int($0) }

        let type = try check(H5Dget_type(dataset), "H5Dget_type")
        defer { H5Tclose(type) }
        elementType = HDF5ElementType(typeID: type)
        storedSize = H5Tget_size(type)

        let creation = try check(H5Dget_create_plist(dataset), "H5Dget_create_plist")
        defer { H5Pclose(creation) }
        chunkShape = nil
        filters = []
        let externalFiles = try check(H5Pget_external_count(creation), "H5Pget_external_count")
        if externalFiles > 0 {
            var name = [CChar](repeating: 0, count: 1024)
            var offset: off_t = 0
            var size: hsize_t = 0
            _ = try check(H5Pget_external(creation, 0, name.count - 1, &name, &offset, &size), "H5Pget_external")
            storedElsewhere = "external storage in \(String(cString: name))"
        }
        if H5Pget_layout(creation) == H5D_VIRTUAL { storedElsewhere = "a virtual dataset of other datasets" }
        guard H5Pget_layout(creation) == H5D_CHUNKED else { return }
        var chunk = [hsize_t](repeating: 0, count: Int(rank))
        _ = try check(H5Pget_chunk(creation, rank, &chunk), "H5Pget_chunk")
        chunkShape = chunk.map { Int($0) }
        let filterCount = try check(H5Pget_nfilters(creation), "H5Pget_nfilters")
        for index in 0..<UInt32(filterCount) {
            var flags: UInt32 = 0
            var valueCount = 0
            var configuration: UInt32 = 0
            var name = [CChar](repeating: 0, count: 256)
            let filter = try check(
                H5Pget_filter2(creation, index, &flags, &valueCount, nil, name.count, &name, &configuration),
                "H5Pget_filter2")
            filters.append(Self.filterName(filter, reported: String(cString: name)))
            if H5Zfilter_avail(filter) <= 0 {
                unavailableFilters.append(
                    HDF5Filter(id: Int(filter), name: Self.filterName(filter, reported: String(cString: name))))
            }
        }
    }

    private static func filterName(_ filter: H5Z_filter_t, reported: String) -> String {
        switch filter {
        case chdf5_filter_deflate(): return "deflate"
        case chdf5_filter_shuffle(): return "shuffle"
        case chdf5_filter_fletcher32(): return "fletcher32"
        case chdf5_filter_szip(): return "szip"
        case chdf5_filter_nbit(): return "nbit"
        case chdf5_filter_scaleoffset(): return "scaleoffset"
        default: return reported.isEmpty ? registeredNames[Int(filter)] ?? "filter \(filter)" : reported
        }
    }

    /// Names of filters registered with the HDF Group that files from other tools often use,
    /// for pipelines that store no name (h5py's low-level API, some plugins).
    private static let registeredNames = [
        307: "bzip2", 32000: "lzf", 32001: "blosc", 32004: "lz4", 32008: "bitshuffle", 32013: "zfp", 32015: "zstd",
    ]
}
