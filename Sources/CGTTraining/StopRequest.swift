import CGTJob
import Foundation
import Synchronization

/// Whether a stop signal (`runtime.stop_signals`) has arrived, asked by the training loop
/// after every step.
///
/// No handler runs: the stop signals are blocked in every thread from the start of `cgt train`
/// (`blockEarly`, before MPI and the read-ahead and stall-watch threads start, which inherit
/// the mask), so the kernel keeps one pending for the process until the loop takes it with
/// `sigtimedwait`. Nothing is interrupted, not a system call of MPI's threads nor a read of
/// HDF5's: a signal is a value the main thread picks up between steps, and it owns it alone.
public enum StopRequest {
    /// The signal taken, kept so every later question gets the same answer.
    private static let taken = Atomic<Int32>(0)
    /// The job's stop signals, one bit per signal number.
    private static let listening = Atomic<UInt64>(0)

    /// The signals a job may name in `runtime.stop_signals`: Slurm's SIGTERM at the time limit
    /// and on preemption, `--signal`'s SIGUSR1 or SIGUSR2, and SIGINT.
    static let candidates = StopSignal.allCases

    /// Blocks every candidate stop signal in the calling thread and the threads it starts from
    /// now on; call it first thing, before MPI starts its threads. A signal in the seconds
    /// before the job file is read (a requeued job is often signalled as it starts) then waits
    /// instead of killing the rank with status 138 or 143 and no requeue.
    public static func blockEarly() {
        var set = signalSet(bits: bits(candidates))
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Listens for `signals` from now on (a second one while the checkpoint is written changes
    /// nothing). The other candidates are unblocked: one that came early takes its default
    /// action now, as it would have without `blockEarly`.
    public static func install(_ signals: [StopSignal]) {
        listening.store(bits(signals), ordering: .relaxed)
        var others = signalSet(bits: bits(candidates.filter { !signals.contains($0) }))
        pthread_sigmask(SIG_UNBLOCK, &others, nil)
    }

    /// The stop signal that arrived, or nil: takes a pending one without waiting. Wraps `sigtimedwait`.
    public static var received: Int32? {
        let earlier = taken.load(ordering: .relaxed)
        if earlier != 0 { return earlier }
        let bits = listening.load(ordering: .relaxed)
        guard bits != 0 else { return nil }
        var set = signalSet(bits: bits)
        var now = timespec(tv_sec: 0, tv_nsec: 0)
        let number = sigtimedwait(&set, nil, &now)
        guard number > 0 else { return nil }
        taken.store(number, ordering: .relaxed)
        return number
    }

    /// Forgets a received signal (tests train several runs in one process).
    public static func reset() { taken.store(0, ordering: .relaxed) }

    private static func bits(_ signals: [StopSignal]) -> UInt64 {
        signals.reduce(0) { $0 | (1 << UInt64($1.number)) }
    }

    /// The set of the signals whose bits are set (no allocation: the loop asks after every step).
    private static func signalSet(bits: UInt64) -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for number in 1..<64 where bits & (1 << UInt64(number)) != 0 { sigaddset(&set, Int32(number)) }
        return set
    }

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
