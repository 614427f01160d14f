import ArgumentParser
import CGTFiles
import CGTMPI
import Foundation

/// Runs a command's work so that any error becomes the one line a user reads and exit status 1.
func reportingFailures(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch {
        throw reportFailure(error)
    }
}

/// Runs a command's work under MPI with every failure printed once, by the rank that knows it,
/// and turned into exit status 1 on every rank (see `MPIEnvironment.run`).
func underMPI(_ body: (Communicator) throws -> Void) throws {
    var rank: Int?
    var reported = false
    do {
        try MPIEnvironment.run(report: { error in
            reported = true
            _ = reportFailure(error, rank: rank)
        }) { mpi in
            rank = mpi.world.hasOtherRanks ? mpi.world.rank : nil
            try body(mpi.world)
        }
    } catch {
        if reported || error is CollectiveFailure { throw (error as? ExitCode) ?? ExitCode.failure }
        throw reportFailure(error, rank: rank)
    }
}

/// Prints an error as the one line a user reads, to standard error, and turns it into exit
/// status 1 (128 + the signal's number for a write a signal stopped, `SignalStopped`).
///
/// With several ranks each line names its rank, so the failing one can be told from the others.
func reportFailure(_ error: Error, rank: Int? = nil) -> ExitCode {
    let text = error is ExitCode ? nil : describe(error).split(whereSeparator: \.isNewline).joined(separator: " ")
    if let text {
        let prefix = rank.map { "cgt (rank \($0)): error: " } ?? "cgt: error: "
        FileHandle.standardError.write(Data((prefix + text + "\n").utf8))
    }
    if let stopped = error as? SignalStopped { return ExitCode(stopped.exitStatus) }
    return (error as? ExitCode) ?? ExitCode.failure
}

/// The sentence for an error: its own description, or ArgumentParser's message for a ValidationError.
private func describe(_ error: Error) -> String {
    if let validation = error as? ValidationError { return validation.message }
    if let agreed = error as? AgreedFailure, let underlying = agreed.underlying { return describe(underlying) }
    // Foundation's file errors (a full disk, a folder that cannot be made) name the file.
    if let cocoa = error as? CocoaError {
        let path = cocoa.filePath ?? cocoa.url?.path ?? ""
        let reason =
            (cocoa.underlying as? POSIXError).map { String(cString: strerror($0.code.rawValue)) }
            ?? cocoa.localizedDescription
        return path.isEmpty ? reason : "\(path): \(reason)"
    }
    return "\(error)"
}
