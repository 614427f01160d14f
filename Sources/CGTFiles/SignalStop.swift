import Foundation
import Synchronization

/// Stops a long file write (`cgt prepare`, `cgt synth`) cleanly when a signal asks the process
/// to end: Ctrl-C, `kill`, a closed terminal, a scheduler's time limit.
///
/// Killed by the signal's default action, the writer would leave its temporary file
/// (`AtomicFile`) behind, megabytes that nothing removes. Inside `catching`, a handler only
/// stores the signal's number in an atomic (all a handler may safely do); the writer calls
/// `check` between chunks of work, which throws `SignalStopped`, and the atomic write removes
/// its temporary file on the way out. Outside `catching` the signals keep their default action:
/// there is nothing to remove then. Training has its own stop signals (`StopRequest`), which
/// checkpoint instead of stopping at once.
public enum SignalStop {
    /// The signals caught: those whose default action ends the process and that people and
    /// schedulers send to end one (Slurm sends SIGTERM, mpirun forwards SIGUSR1 and SIGUSR2).
    static let caught: [(number: Int32, name: String)] = [
        (SIGINT, "SIGINT"), (SIGTERM, "SIGTERM"), (SIGHUP, "SIGHUP"), (SIGUSR1, "SIGUSR1"), (SIGUSR2, "SIGUSR2"),
    ]

    private static let received = Atomic<Int32>(0)

    /// A fail point for tests (`CGT_TEST_SIGNAL_AT_CHECK=TERM`): the first `check` inside
    /// `catching` raises that signal itself, so a test stops a write at a known point instead
    /// of racing it with a signal from outside.
    private static let failPoint: Int32? = ProcessInfo.processInfo.environment["CGT_TEST_SIGNAL_AT_CHECK"].flatMap(
        number(named:))

    /// The number of a signal cgt stops on, by its name with or without "SIG" ("TERM", "SIGUSR1").
    static func number(named name: String) -> Int32? {
        caught.first { $0.name == "SIG\(name)" || $0.name == name }?.number
    }
    private static let failPointArmed = Atomic<Bool>(false)

    /// Runs `body` with the signals of `caught` stored instead of ending the process; their
    /// previous actions are restored after it. A signal that arrives after `body`'s last
    /// `check` changes nothing: the file is whole by then.
    public static func catching<R>(_ body: () throws -> R) throws -> R {
        // The atomics are made here, before any handler runs: a lazy static initialised inside
        // a signal handler would take a lock there.
        received.store(0, ordering: .relaxed)
        failPointArmed.store(failPoint != nil, ordering: .relaxed)
        var previous: [(Int32, sigaction)] = []
        for (number, _) in caught {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { number in SignalStop.received.store(number, ordering: .relaxed) }
            action.sa_flags = SA_RESTART
            sigemptyset(&action.sa_mask)
            var old = sigaction()
            sigaction(number, &action, &old)
            previous.append((number, old))
        }
        defer {
            for (number, old) in previous {
                var old = old
                sigaction(number, &old, nil)
            }
        }
        return try body()
    }

    /// Throws `SignalStopped` when a caught signal has arrived; called by a writer of `path`
    /// between chunks of work.
    public static func check(writing path: String) throws {
        if let failPoint, failPointArmed.exchange(false, ordering: .relaxed) { raise(failPoint) }
        let number = received.load(ordering: .relaxed)
        guard number != 0 else { return }
        throw SignalStopped(signal: number, path: path)
    }

    /// "SIGTERM" for a caught signal's number.
    static func name(of number: Int32) -> String {
        caught.first { $0.number == number }?.name ?? "signal \(number)"
    }
}

/// A write that a signal stopped: its temporary file is removed and `path` is as it was.
public struct SignalStopped: LocatedError {
    public let signal: Int32
    public let path: String

    /// 128 + the signal's number (130 for SIGINT, 143 for SIGTERM): what a shell reports for a
    /// process the signal ended, so scripts see the same status either way.
    public var exitStatus: Int32 { 128 + signal }

    public var location: [String] { [path] }
    public var problem: String { "stopped by \(SignalStop.name(of: signal)) while writing it; nothing was written" }
}
