import CGTEvaluation
import CGTJob
import Foundation

/// Warns when the main thread stays in a collective too long, from a thread of its own.
///
/// A blocking `MPI_Allreduce` cannot report that it is stuck; this watch can, since it only
/// reads a clock and never calls MPI (which `MPI_THREAD_FUNNELED` allows). Entering and
/// leaving cost a lock each and allocate nothing, so the training loop can call them every step.
public final class StallWatch: @unchecked Sendable {
    private let lock = NSLock()
    private var since: UInt64?
    private var step = 0, epoch = 0
    private var place: StaticString = ""
    private var warned = false
    private var stopped = false
    private let limit: Double
    /// Waiting this long in one place ends the process (0: never).
    private let shutdownLimit: Double
    private var shutDown = false
    /// A fail point for the stall tests (`CGT_TEST_STOP_RANK` names this rank): the process
    /// stops itself with SIGSTOP as it enters its first watched collective outside the training
    /// loop (epoch 0 in `watching`: the loop always runs at epoch 1 or later), a
    /// hung node at a known place, where a test's own SIGSTOP from outside would race the work.
    private var stopsItselfInCollective = false
    private let shutdown: @Sendable (_ seconds: Double, _ place: StaticString, _ step: Int, _ epoch: Int) -> Void
    private let report: @Sendable (_ seconds: Double, _ place: StaticString, _ step: Int, _ epoch: Int) -> Void

    init(
        limit: Double, shutdownLimit: Double = 0, report: @escaping @Sendable (Double, StaticString, Int, Int) -> Void,
        shutdown: @escaping @Sendable (Double, StaticString, Int, Int) -> Void = { _, _, _, _ in }
    ) {
        self.limit = limit
        self.shutdownLimit = shutdownLimit
        self.report = report
        self.shutdown = shutdown
        let thread = Thread { [weak self] in
            // Set from the thread itself, the name reaches the kernel: `top -H`, gdb and /proc show it.
            Thread.current.name = "cgt stall watch"
            while let watch = self, watch.check() {
                Thread.sleep(forTimeInterval: min(1, max(0.05, watch.limit / 4)))
            }
        }
        thread.start()
    }

    /// Returns false once the watch is stopped.
    private func check() -> Bool {
        lock.lock()
        var fire: (Double, StaticString, Int, Int)?
        var end: (Double, StaticString, Int, Int)?
        if let since {
            let waited = Double(DispatchTime.now().uptimeNanoseconds - since) / 1e9
            if waited > limit && !warned {
                warned = true
                fire = (waited, place, step, epoch)
            }
            if shutdownLimit > 0 && waited > shutdownLimit && !shutDown {
                shutDown = true
                end = (waited, place, step, epoch)
            }
        }
        let running = !stopped
        lock.unlock()
        if let fire { report(fire.0, fire.1, fire.2, fire.3) }
        if let end { shutdown(end.0, end.1, end.2, end.3) }
        return running
    }

    /// The main thread enters the collective `place` at `step` (1-based) of `epoch` (1-based).
    func enter(_ place: StaticString, step: Int, epoch: Int) {
        lock.lock()
        since = DispatchTime.now().uptimeNanoseconds
        self.place = place
        self.step = step
        self.epoch = epoch
        warned = false
        lock.unlock()
    }

    func leave() {
        lock.lock()
        since = nil
        lock.unlock()
    }

    public func stop() {
        lock.lock()
        stopped = true
        lock.unlock()
    }

    deinit { stop() }

    /// The watch of rank `rank` with the job's limits (`runtime.stall_warning_seconds`,
    /// `runtime.stall_shutdown_seconds`): a warning on stderr first, then the end of the
    /// process, which makes the launcher stop every rank.
    public convenience init(rank: Int, runtime: RuntimeSection) {
        // Epoch 0 is work outside the training loop (`cgt eval`'s ranks), which has no position
        // and no checkpoint to resume from.
        let position = { (step: Int, epoch: Int) in
            epoch == 0 ? "" : step > 0 ? " at step \(step) (epoch \(epoch))" : " at the start of epoch \(epoch)"
        }
        let advice = { (epoch: Int) in epoch == 0 ? "" : "; resume from the last checkpoint" }
        self.init(
            limit: runtime.stallWarningSeconds, shutdownLimit: runtime.stallShutdownSeconds,
            report: { waited, place, step, epoch in
                FileHandle.standardError.write(
                    Data(
                        "cgt (rank \(rank)): warning: waited \(String(format: "%.1f", waited)) s in \(place)\(position(step, epoch)); another rank may have stopped\n"
                            .utf8))
            },
            shutdown: { waited, place, step, epoch in
                // MPI may not be called from this thread; ending the process makes the launcher
                // stop every rank. Checkpoints are written atomically, so the last one is whole.
                FileHandle.standardError.write(
                    Data(
                        "cgt (rank \(rank)): error: waited \(String(format: "%.0f", waited)) s in \(place)\(position(step, epoch)), more than runtime.stall_shutdown_seconds: ending the job\(advice(epoch))\n"
                            .utf8))
                _exit(1)
            })
        stopsItselfInCollective = ProcessInfo.processInfo.environment["CGT_TEST_STOP_RANK"] == "\(rank)"
    }

    /// Runs the collective `body` at `place` under the watch: a wait longer than the limits is
    /// reported with the loop's position (step and epoch, 1-based; epoch 0 is work outside the
    /// training loop, `cgt eval`, whose messages name the place alone).
    func watching<R>(_ place: StaticString, step: Int, epoch: Int, _ body: () throws -> R) throws -> R {
        enter(place, step: step, epoch: epoch)
        defer { leave() }
        if epoch == 0 && stopsItselfInCollective {
            stopsItselfInCollective = false
            raise(SIGSTOP)
        }
        return try body()
    }
}
