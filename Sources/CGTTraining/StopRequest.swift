import CGTJob
import Foundation
import Synchronization

/// Whether a stop signal (`runtime.stop_signals`) has arrived: set by the signal handler,
/// read by the training loop after every step.
///
/// The handler only stores the signal's number in an atomic, which is all a handler may
/// safely do; the loop agrees with the other ranks, checkpoints and stops.
public enum StopRequest {
    private static let signal = Atomic<Int32>(0)

    /// The signal that asked to stop, or nil.
    public static var received: Int32? {
        let number = signal.load(ordering: .relaxed)
        return number == 0 ? nil : number
    }

    /// Catches `signals` from now on (a second one while the checkpoint is written changes nothing).
    public static func install(_ signals: [StopSignal]) {
        // The atomic is made here, before any handler runs: a lazy static initialised inside a
        // signal handler would take a lock there.
        _ = received
        for name in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { number in StopRequest.signal.store(number, ordering: .relaxed) }
            action.sa_flags = SA_RESTART
            sigemptyset(&action.sa_mask)
            sigaction(name.number, &action, nil)
        }
    }

    /// Forgets a received signal (tests train several runs in one process).
    public static func reset() { signal.store(0, ordering: .relaxed) }

    /// "SIGUSR1" for a signal's number.
    public static func name(of number: Int32) -> String {
        StopSignal.allCases.first { $0.number == number }.map { "SIG\($0.rawValue)" } ?? "signal \(number)"
    }
}

extension StopSignal {
    public var number: Int32 {
        switch self {
        case .term: SIGTERM
        case .usr1: SIGUSR1
        case .usr2: SIGUSR2
        case .int: SIGINT
        }
    }
}

/// Training stopped at a checkpoint on a stop signal, on every rank at the same step: the
/// job ends with `exitStatus` so a Slurm script can requeue it, and resumes exactly there.
public struct TrainingInterrupted: Error, CustomStringConvertible, Sendable {
    /// EX_TEMPFAIL: "try again later", what `launch/slurm/*.sbatch` turns into `scontrol requeue`.
    public static let exitStatus: Int32 = 75
    public let signal: Int32
    public let checkpoint: String
    public let epoch: Int
    public let stepInEpoch: Int
    public let isReporter: Bool

    public var description: String {
        "stopped by \(StopRequest.name(of: signal)) at step \(stepInEpoch) of epoch \(epoch + 1); wrote \(checkpoint), which --resume continues exactly (a requeued Slurm job resumes by itself)"
    }
}
