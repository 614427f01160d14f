import Foundation

/// An error a user fixes at a place: a file, and where in it (an HDF5 object, a job key).
///
/// Every cgt error about input or output says where and what in one line, "file: where: what",
/// so a cluster log names the file to open and the key or dataset to look at.
public protocol LocatedError: Error, CustomStringConvertible {
    /// The file (or other source, such as `--set`) first, then the place inside it; empty parts are left out.
    var location: [String] { get }
    /// What is wrong there.
    var problem: String { get }
}

extension LocatedError {
    public var description: String {
        (location.filter { !$0.isEmpty } + [problem]).joined(separator: ": ")
    }
}

/// A file-system call that failed, with the path and the system's reason.
public struct FileError: LocatedError {
    /// The call that failed, e.g. "rename" or "fsync".
    public let operation: String
    public let path: String
    /// The system's explanation (`strerror`).
    public let reason: String

    public init(operation: String, path: String, reason: String) {
        self.operation = operation
        self.path = path
        self.reason = reason
    }

    /// The error of a Foundation call on `path` (`FileHandle`, `FileManager`), whose own
    /// description names neither the file nor, on Linux, the system's reason ("The operation
    /// could not be completed. There isn't enough space.").
    public init(operation: String, path: String, underlying error: Error) {
        let nested = (error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError
        let code =
            (error as? POSIXError)?.code.rawValue ?? (error as? CocoaError)?.underlying.flatMap {
                ($0 as? POSIXError)?.code.rawValue
            } ?? (nested?.domain == NSPOSIXErrorDomain ? nested.map { Int32($0.code) } : nil)
        self.init(
            operation: operation, path: path,
            reason: code.map { String(cString: strerror($0)) } ?? (error as NSError).localizedDescription)
    }

    public var location: [String] { [path] }
    public var problem: String { "\(operation) failed: \(reason)" }
}

/// A place that cannot be used as asked, in words: a failed replacement named by the file
/// (not its temporary), an output folder that is a file, a bad line of a file.
public struct PathError: LocatedError {
    public let location: [String]
    public let problem: String

    public init(location: [String], problem: String) {
        self.location = location
        self.problem = problem
    }
}
