import CMPI

/// The one owner of `MPI_Init_thread` and `MPI_Finalize` in a process.
///
/// cgt calls MPI from one thread only, so it asks for `MPI_THREAD_FUNNELED` (the main thread
/// makes every call; other threads may exist, as OpenBLAS's do). Started without `mpirun`,
/// the process is a 1-rank world (an MPI singleton).
public final class MPIEnvironment {
    /// The world communicator, with errors returned rather than aborting the job, so that
    /// a failure can be reported before the ranks stop.
    public let world: Communicator
    private var finalized = false

    /// Initialises MPI. Wraps `MPI_Init_thread`.
    public init() throws {
        var initialized: Int32 = 0
        try check(MPI_Initialized(&initialized), "MPI_Initialized")
        if initialized == 0 {
            var provided: Int32 = 0
            try check(MPI_Init_thread(nil, nil, cmpi_thread_funneled(), &provided), "MPI_Init_thread")
        }
        try check(MPI_Comm_set_errhandler(cmpi_comm_world(), cmpi_errors_return()), "MPI_Comm_set_errhandler")
        world = try Communicator(borrowing: cmpi_comm_world())
    }

    /// Finalises MPI; safe to call more than once. Wraps `MPI_Finalize`.
    public func finalize() throws {
        guard !finalized else { return }
        finalized = true
        try check(MPI_Finalize(), "MPI_Finalize")
    }

    /// Runs `body` between initialisation and finalisation; `report` prints each error this
    /// rank must print, before the ranks part.
    ///
    /// A `CollectiveFailure` is known to every rank: its one reporter prints it, then all
    /// finalise and stop (printing before `MPI_Finalize`, which every rank enters, keeps the line
    /// from being lost when the launcher stops the job at the first non-zero exit). Any other
    /// error is known to this rank only: it is printed, and with other ranks the whole job is
    /// aborted, so that no rank waits forever in a collective this one will never join.
    public static func run<R>(report: (Error) -> Void, _ body: (MPIEnvironment) throws -> R) throws -> R {
        let environment = try MPIEnvironment()
        do {
            let result = try body(environment)
            try environment.finalize()
            return result
        } catch let error as CollectiveFailure {
            if error.isReporter { report(error) }
            try? environment.finalize()
            throw error
        } catch {
            report(error)
            if environment.world.hasOtherRanks { environment.world.abort(code: 1) }
            try? environment.finalize()
            throw error
        }
    }

    deinit { try? finalize() }
}
