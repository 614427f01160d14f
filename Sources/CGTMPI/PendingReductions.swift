import CMPI
import Foundation

/// Non-blocking sums in flight, started in a fixed order and completed together.
///
/// Open MPI progresses non-blocking collectives only inside MPI calls, so the owner calls
/// `poll()` between pieces of other work (the layers of a backward pass) to keep them moving.
public final class PendingReductions {
    private let communicator: Communicator
    private var requests: [MPI_Request?] = []

    public init(communicator: Communicator) {
        self.communicator = communicator
    }

    /// Starts summing `buffer` over all ranks, in place. Wraps `MPI_Iallreduce`.
    ///
    /// Every rank must start the same reductions in the same order.
    public func startSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        guard buffer.count > 0 else { return }
        var request: MPI_Request?
        try check(
            MPI_Iallreduce(
                cmpi_in_place(), buffer.baseAddress, Int32(buffer.count), cmpi_float(), cmpi_op_sum(),
                communicator.handle, &request), "MPI_Iallreduce")
        requests.append(request)
    }

    /// Lets MPI advance the reductions without waiting. Wraps `MPI_Testall`.
    public func poll() throws {
        guard !requests.isEmpty else { return }
        var done: Int32 = 0
        try check(MPI_Testall(Int32(requests.count), &requests, &done, cmpi_statuses_ignore()), "MPI_Testall")
    }

    /// Waits for every reduction; returns the seconds spent waiting.
    public func waitAll() throws -> Double {
        guard !requests.isEmpty else { return 0 }
        let start = DispatchTime.now().uptimeNanoseconds
        var spins = 0
        while true {
            var done: Int32 = 0
            try check(MPI_Testall(Int32(requests.count), &requests, &done, cmpi_statuses_ignore()), "MPI_Testall")
            if done != 0 { break }
            spins += 1
            // Spin for the common short wait; back off once it is clearly long.
            if spins > 20_000 { usleep(200) }
        }
        requests.removeAll(keepingCapacity: true)
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }
}
