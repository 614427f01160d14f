import Foundation

/// Writes an HDF5 file so that readers never see a half-written one.
///
/// `body` writes to "<path>.tmp-<pid>" in the same directory; the file is then closed,
/// fsync'ed, renamed over `path`, and the directory fsync'ed so the rename survives a crash.
/// A checkpoint interrupted mid-write therefore leaves the previous checkpoint intact. If
/// `body` (or any step before the rename) throws, the temporary file is removed, `path` is
/// untouched, and the error is rethrown.
/// - Returns: `body`'s value. Objects it returns that belong to the file keep the (renamed)
///   file open until they are released.
public func writeHDF5Atomically<R>(to path: String, _ body: (HDF5File) throws -> R) throws -> R {
    let temporaryPath = "\(path).tmp-\(getpid())"
    let result: R
    do {
        result = try closingAfter(HDF5File.create(temporaryPath), body)
        try synchronize(temporaryPath, directory: false)
        try posixCheck(rename(temporaryPath, path), "rename", temporaryPath)
    } catch {
        unlink(temporaryPath)
        throw error
    }
    try synchronize((path as NSString).deletingLastPathComponent, directory: true)
    return result
}

/// Flushes a file's (or a directory's entries') contents to stable storage.
private func synchronize(_ path: String, directory: Bool) throws {
    let target = path.isEmpty ? "." : path
    let descriptor = try posixCheck(open(target, directory ? O_RDONLY | O_DIRECTORY : O_RDONLY), "open", target)
    defer { close(descriptor) }
    try posixCheck(fsync(descriptor), "fsync", target)
}

@discardableResult
private func posixCheck(_ result: Int32, _ operation: String, _ path: String) throws -> Int32 {
    guard result >= 0 else {
        throw HDF5Error(operation: operation, file: path, object: "", message: String(cString: strerror(errno)))
    }
    return result
}
