/// An error every rank of a job knows about at the same point, so the ranks can stop together
/// and finalise MPI cleanly instead of aborting the job.
public protocol CollectiveFailure: Error {
    /// Whether this rank prints the error: exactly one rank of the job does.
    var isReporter: Bool { get }
}

/// A failure agreed on by all ranks: the lowest failing rank reports its own error, the others stop quietly.
public struct AgreedFailure: CollectiveFailure, CustomStringConvertible {
    public let underlying: Error?
    public let reportingRank: Int
    public let isReporter: Bool

    public init(underlying: Error?, reportingRank: Int, isReporter: Bool) {
        self.underlying = underlying
        self.reportingRank = reportingRank
        self.isReporter = isReporter
    }

    public var description: String {
        underlying.map { "\($0)" } ?? "rank \(reportingRank) failed"
    }
}

extension Communicator {
    /// Runs `body`, which must not call collectives, on every rank; if it fails on any rank,
    /// every rank throws an `AgreedFailure` (reported by the lowest failing rank) instead of
    /// some ranks going on into a collective the failed ones will never join.
    public func collectively<R>(_ body: () throws -> R) throws -> R {
        let result: Result<R, Error>
        do { result = .success(try body()) } catch { result = .failure(error) }
        var failed = false
        if case .failure = result { failed = true }
        if let first = try firstRank(where: failed) {
            var mine: Error?
            if case .failure(let error) = result { mine = error }
            throw AgreedFailure(underlying: rank == first ? mine : nil, reportingRank: first, isReporter: rank == first)
        }
        return try result.get()
    }
}
