import CMPI

/// A counter held by rank 0 that any rank can read and advance on its own, without rank 0
/// taking part (MPI one-sided communication): a work queue without a coordinator, so that
/// rank 0 can work like every other rank. In a world of one rank the counter is a plain
/// local value: Open MPI 4.1 creates no window there (`MPI_Win_create` fails with
/// MPI_ERR_WIN for a single process, with or without mpirun).
public final class SharedCounter {
    private let communicator: Communicator
    private var window: MPI_Win?
    private let storage: UnsafeMutablePointer<Int64>

    /// Creates the counter at `initial`. Collective over `communicator`.
    public init(communicator: Communicator, initial: Int64 = 0) throws {
        self.communicator = communicator
        storage = .allocate(capacity: 1)
        storage.initialize(to: initial)
        guard communicator.hasOtherRanks else { return }
        let bytes = communicator.isRoot ? MPI_Aint(MemoryLayout<Int64>.size) : 0
        var created: MPI_Win?
        try check(
            MPI_Win_create(
                storage, bytes, Int32(MemoryLayout<Int64>.size), cmpi_info_null(), communicator.handle, &created),
            "MPI_Win_create")
        window = created
    }

    /// Adds `value` and returns the value before, atomically across ranks.
    public func fetchAndAdd(_ value: Int64) throws -> Int64 {
        guard window != nil else {
            defer { storage.pointee += value }
            return storage.pointee
        }
        var add = value
        var previous: Int64 = 0
        try check(MPI_Win_lock(cmpi_lock_exclusive(), 0, 0, window), "MPI_Win_lock")
        try check(MPI_Fetch_and_op(&add, &previous, cmpi_int64(), 0, 0, cmpi_op_sum(), window), "MPI_Fetch_and_op")
        try check(MPI_Win_unlock(0, window), "MPI_Win_unlock")
        return previous
    }

    /// Lets MPI answer the other ranks' pending `fetchAndAdd` calls on this counter.
    ///
    /// Passive-target operations need the rank holding the window to enter MPI now and then
    /// on many transports (Open MPI 4.1's osc/rdma over shared memory among them): a rank 0
    /// busy in a long computation otherwise holds every other rank at its next `fetchAndAdd`
    /// until it is done. One `MPI_Iprobe`; call it between units of work. Wraps `MPI_Iprobe`.
    public func serve() {
        guard window != nil else { return }
        var flag: Int32 = 0
        _ = MPI_Iprobe(cmpi_any_source(), cmpi_any_tag(), communicator.handle, &flag, cmpi_status_ignore())
    }

    /// Releases the window. Collective over the communicator.
    public func free() throws {
        guard window != nil else { return }
        try check(MPI_Win_free(&window), "MPI_Win_free")
        window = nil
    }

    deinit { storage.deallocate() }
}
