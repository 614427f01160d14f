import ArgumentParser
import CGTMPI
import Foundation

/// Prints an error as the one line a user reads, to standard error, and turns it into exit status 1.
///
/// With several ranks each line names its rank, so the failing one can be told from the others.
func reportFailure(_ error: Error, rank: Int? = nil) -> ExitCode {
    let text = error is ExitCode ? nil : describe(error).split(whereSeparator: \.isNewline).joined(separator: " ")
    if let text {
        let prefix = rank.map { "cgt (rank \($0)): error: " } ?? "cgt: error: "
        FileHandle.standardError.write(Data((prefix + text + "\n").utf8))
    }
    return (error as? ExitCode) ?? ExitCode.failure
}

/// The sentence for an error: its own description, or ArgumentParser's message for a ValidationError.
private func describe(_ error: Error) -> String {
    if let validation = error as? ValidationError { return validation.message }
    if let agreed = error as? AgreedFailure, let underlying = agreed.underlying { return describe(underlying) }
    return "\(error)"
}
