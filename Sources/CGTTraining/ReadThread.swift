import CGTFiles
import Dispatch
import Foundation

/// The one thread that reads the training split while the loop trains.
///
/// Reads run on it one at a time, in the order submitted, so libhdf5 (not thread-safe) has
/// one user at a time: the loop touches HDF5 itself (evaluation, checkpoints) only after
/// `waitUntilIdle()`. The thread is started by the first read and ends with `stop()`.
final class ReadThread: @unchecked Sendable {
    private let condition = NSCondition()
    // Guarded by `condition`:
    private var reads: [() -> Void] = []
    private var busy = false
    private var stopping = false
    private var started = false

    /// Runs `read` on the thread after the reads before it.
    func submit(_ read: @escaping () -> Void) {
        condition.lock()
        defer { condition.unlock() }
        precondition(!stopping, "a read submitted after the read thread stopped")
        reads.append(read)
        if !started {
            started = true
            let thread = Thread { [self] in run() }
            thread.name = "cgt-read-ahead"
            thread.start()
        }
        condition.broadcast()
    }

    /// Returns once no read runs or waits: HDF5 is the caller's.
    func waitUntilIdle() {
        condition.lock()
        while busy || !reads.isEmpty { condition.wait() }
        condition.unlock()
    }

    /// Drops the reads not started, waits for the one running, and ends the thread.
    func stop() {
        condition.lock()
        stopping = true
        reads.removeAll()
        condition.broadcast()
        while busy { condition.wait() }
        condition.unlock()
    }

    private func run() {
        condition.lock()
        while true {
            while reads.isEmpty && !stopping { condition.wait() }
            if reads.isEmpty {
                condition.unlock()
                return
            }
            let read = reads.removeFirst()
            busy = true
            condition.unlock()
            SignalDrill.reached(.readAhead)
            read()
            condition.lock()
            busy = false
            condition.broadcast()
        }
    }
}

/// A value a read on the read thread makes, and the wait for it on the loop's thread.
final class PendingRead<Value>: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    // Written once by the read thread before `done` is signalled, read after the wait.
    private var result: Result<Value, Error>?

    /// Submits `read` to `thread`; its value (or error) is kept for `wait()`.
    init(on thread: ReadThread, _ read: @escaping () throws -> Value) {
        thread.submit { [self] in
            result = Result { try read() }
            done.signal()
        }
    }

    /// The value, once read; an error reading it is thrown here, on the loop's thread.
    func wait() throws -> Value {
        done.wait()
        done.signal()
        return try result!.get()
    }
}
