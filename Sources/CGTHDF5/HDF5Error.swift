import CGTFiles
import CHDF5

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed HDF5 call (or a request HDF5 would reject), with where it happened and why.
///
/// HDF5 reports failures as a stack of messages, from the API function that was called down
/// to the routine that detected the problem; the innermost message is usually the one that
/// explains it ("file signature not found", "object 'x' doesn't exist").
public struct HDF5Error: LocatedError {
    /// The HDF5 function (or library-level operation) that failed, e.g. "H5Dread".
    public let operation: String
    /// Path of the HDF5 file on disk.
    public let file: String
    /// Path of the object inside the file, e.g. "/train/x"; empty when the failure concerns the file.
    public let object: String
    /// HDF5 error stack as "function(): message" lines, innermost (the detecting routine) first.
    public let stack: [String]
    /// The most useful single explanation: the innermost stack message, or the reason given
    /// when the error did not come from libhdf5.
    public let message: String

    /// Creates an error that did not come from libhdf5's error stack (a bad row range, a
    /// missing attribute, a failed `fsync`).
    public init(operation: String, file: String, object: String, stack: [String] = [], message: String) {
        self.operation = operation
        self.file = file
        self.object = object
        self.stack = stack
        self.message = message
    }

    public var location: [String] { [file, object] }
    public var problem: String { "\(operation) failed: \(message)" }

    /// Builds an error from HDF5's current error stack and clears the stack.
    static func fromCurrentStack(operation: String, file: String, object: String) -> HDF5Error {
        var frames: [(function: String, description: String)] = []
        withUnsafeMutablePointer(to: &frames) { context in
            _ = H5Ewalk2(
                chdf5_e_default(), H5E_WALK_UPWARD,
                { _, frame, context in
                    guard let frame, let context else { return 0 }
                    let frames = context.assumingMemoryBound(to: [(function: String, description: String)].self)
                    let function = frame.pointee.func_name.map { String(cString: $0) } ?? "?"
                    let description = frame.pointee.desc.map { String(cString: $0) } ?? ""
                    // Some messages embed a ctime() timestamp, newline included; keep each on one line.
                    frames.pointee.append(
                        (function, description.split(whereSeparator: \.isNewline).joined(separator: " ")))
                    return 0
                }, context)
        }
        _ = H5Eclear2(chdf5_e_default())
        let message = concise(frames.first(where: { !$0.description.isEmpty })?.description ?? "no HDF5 error message")
        return HDF5Error(
            operation: operation, file: file, object: object,
            stack: frames.map { "\($0.function)(): \($0.description)" }, message: message)
    }
}

/// Switches off HDF5's printing of error stacks to stderr on the calling thread, once per
/// thread: failures are reported as thrown `HDF5Error`s instead.
///
/// The setting belongs to the thread's own error stack in a thread-safe libhdf5 (Debian's is
/// one), so switching it off on the main thread left a thread that reads ahead printing 20-40
/// lines of "HDF5-DIAG" before cgt's one line. `hdf5Check` calls this before every call.
func silenceHDF5ErrorPrintingOnThisThread() {
    guard pthread_getspecific(silencedThreadKey) == nil else { return }
    _ = H5Eset_auto2(chdf5_e_default(), nil, nil)
    pthread_setspecific(silencedThreadKey, UnsafeRawPointer(bitPattern: 1))
}

/// Marks the threads whose HDF5 error printing is off (`silenceHDF5ErrorPrintingOnThisThread`).
private let silencedThreadKey: pthread_key_t = {
    var key = pthread_key_t()
    precondition(pthread_key_create(&key, nil) == 0, "pthread_key_create failed")
    return key
}()

/// Makes the libhdf5 call `result` and returns its value unless it is negative (HDF5's failure
/// convention for `herr_t`, `htri_t`, `hid_t` and `ssize_t`), in which case throws an
/// `HDF5Error` built from the error stack. HDF5's own error printing is switched off on the
/// calling thread first.
///
/// Every libhdf5 call in this module goes through this function.
@discardableResult
func hdf5Check<R: BinaryInteger>(_ result: @autoclosure () -> R, _ operation: String, file: String, object: String)
    throws -> R
{
    silenceHDF5ErrorPrintingOnThisThread()
    let value = result()
    if value < 0 {
        throw HDF5Error.fromCurrentStack(operation: operation, file: file, object: object)
    }
    return value
}

/// HDF5's I/O messages carry the system's reason inside a long record ("file write failed:
/// time = ..., errno = 28, error message = 'No space left on device', buf = ..."): the reason
/// is what a user acts on.
func concise(_ message: String) -> String {
    guard let start = message.range(of: "error message = '"),
        let end = message[start.upperBound...].firstIndex(of: "'")
    else { return message }
    let head = message.firstIndex(of: ":").map { String(message[..<$0]) } ?? "I/O failed"
    return "\(head): \(message[start.upperBound..<end])"
}
