import CMPI

/// A group of ranks that talk to each other: the world, or a part split from it.
///
/// All calls must come from the thread that initialised MPI.
public final class Communicator {
    let handle: MPI_Comm
    private let owned: Bool
    public let rank: Int
    public let size: Int

    init(borrowing handle: MPI_Comm) throws {
        self.handle = handle
        owned = false
        var r: Int32 = 0
        var s: Int32 = 0
        try check(MPI_Comm_rank(handle, &r), "MPI_Comm_rank")
        try check(MPI_Comm_size(handle, &s), "MPI_Comm_size")
        rank = Int(r)
        size = Int(s)
    }

    private init(owning handle: MPI_Comm, rank: Int, size: Int) {
        self.handle = handle
        owned = true
        self.rank = rank
        self.size = size
    }

    deinit {
        if owned {
            var h: MPI_Comm? = handle
            MPI_Comm_free(&h)
        }
    }

    public var isRoot: Bool { rank == 0 }

    /// Whether there is another rank to talk to: the one place cgt asks "more than one rank?".
    /// With one rank every collective is the identity, so callers skip MPI altogether.
    public var hasOtherRanks: Bool { size > 1 }

    /// Waits until every rank has arrived. Wraps `MPI_Barrier`.
    public func barrier() throws {
        try check(MPI_Barrier(handle), "MPI_Barrier")
    }

    /// Ends every rank of the job. Wraps `MPI_Abort`.
    public func abort(code: Int32) -> Never {
        MPI_Abort(handle, code)
        fatalError("MPI_Abort returned")
    }

    /// Sums `buffer` element-wise over all ranks, in place. Wraps `MPI_Allreduce`.
    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        try allReduce(buffer.baseAddress, buffer.count, cmpi_float(), cmpi_op_sum())
    }

    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {
        try allReduce(buffer.baseAddress, buffer.count, cmpi_double(), cmpi_op_sum())
    }

    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Int64>) throws {
        try allReduce(buffer.baseAddress, buffer.count, cmpi_int64(), cmpi_op_sum())
    }

    /// The largest value of each element over all ranks, in place.
    public func allReduceMax(_ buffer: UnsafeMutableBufferPointer<Int64>) throws {
        try allReduce(buffer.baseAddress, buffer.count, cmpi_int64(), cmpi_op_max())
    }

    /// The smallest value of each element over all ranks, in place.
    public func allReduceMin(_ buffer: UnsafeMutableBufferPointer<Int64>) throws {
        try allReduce(buffer.baseAddress, buffer.count, cmpi_int64(), cmpi_op_min())
    }

    /// The sum of one value over all ranks.
    public func sum(_ value: Double) throws -> Double {
        var v = value
        try withUnsafeMutablePointer(to: &v) { try allReduceSum(UnsafeMutableBufferPointer(start: $0, count: 1)) }
        return v
    }

    /// The smallest rank for which `flag` is true, or nil when it is false everywhere.
    ///
    /// Lets all ranks agree, without aborting, on whether any of them failed and which one reports it.
    public func firstRank(where flag: Bool) throws -> Int? {
        var value = flag ? Int64(rank) : Int64(size)
        try withUnsafeMutablePointer(to: &value) { try allReduceMin(UnsafeMutableBufferPointer(start: $0, count: 1)) }
        return value < Int64(size) ? Int(value) : nil
    }

    private func allReduce(_ base: UnsafeMutableRawPointer?, _ count: Int, _ type: MPI_Datatype, _ op: MPI_Op) throws {
        guard count > 0, let base else { return }
        try check(MPI_Allreduce(cmpi_in_place(), base, Int32(count), type, op, handle), "MPI_Allreduce")
    }

    /// Copies `buffer` of floats from rank `root` to every rank.
    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int = 0) throws {
        try broadcast(UnsafeMutableRawBufferPointer(buffer), root: root)
    }

    /// Copies `buffer` from rank `root` to every rank. Wraps `MPI_Bcast`.
    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int = 0) throws {
        guard buffer.count > 0 else { return }
        try check(MPI_Bcast(buffer.baseAddress, Int32(buffer.count), cmpi_uint8(), Int32(root), handle), "MPI_Bcast")
    }

    /// Sends rank `root`'s bytes to every rank, whatever their length; returns them everywhere.
    public func broadcast(bytes: [UInt8], root: Int = 0) throws -> [UInt8] {
        var length = Int64(bytes.count)
        try withUnsafeMutableBytes(of: &length) { try broadcast($0, root: root) }
        var result = rank == root ? bytes : [UInt8](repeating: 0, count: Int(length))
        try result.withUnsafeMutableBytes { try broadcast($0, root: root) }
        return result
    }

    /// Sends rank `root`'s string to every rank.
    public func broadcast(string: String, root: Int = 0) throws -> String {
        String(decoding: try broadcast(bytes: Array(string.utf8), root: root), as: UTF8.self)
    }

    /// Gathers every rank's bytes, whatever their lengths, in rank order, on every rank (one
    /// broadcast per rank: meant for results, not for the training loop).
    public func allGather(bytes: [UInt8]) throws -> [[UInt8]] {
        try (0..<size).map { root in try broadcast(bytes: rank == root ? bytes : [], root: root) }
    }

    /// Gathers one value from every rank, in rank order, on every rank. Wraps `MPI_Allgather`.
    public func allGather(_ value: Int64) throws -> [Int64] {
        var mine = value
        var all = [Int64](repeating: 0, count: size)
        try all.withUnsafeMutableBufferPointer { out in
            try check(MPI_Allgather(&mine, 1, cmpi_int64(), out.baseAddress, 1, cmpi_int64(), handle), "MPI_Allgather")
        }
        return all
    }

    /// Splits this communicator into groups of equal `color`, ordered by `key`. Wraps `MPI_Comm_split`.
    public func split(color: Int, key: Int) throws -> Communicator {
        var newHandle: MPI_Comm?
        try check(MPI_Comm_split(handle, Int32(color), Int32(key), &newHandle), "MPI_Comm_split")
        guard let newHandle else { throw MPIError(operation: "MPI_Comm_split", code: -1) }
        try check(MPI_Comm_set_errhandler(newHandle, cmpi_errors_return()), "MPI_Comm_set_errhandler")
        var r: Int32 = 0
        var s: Int32 = 0
        try check(MPI_Comm_rank(newHandle, &r), "MPI_Comm_rank")
        try check(MPI_Comm_size(newHandle, &s), "MPI_Comm_size")
        return Communicator(owning: newHandle, rank: Int(r), size: Int(s))
    }
}
