import CGTFiles

/// Writes an HDF5 file so that readers never see a half-written one (`AtomicFile.replace`).
///
/// `body` writes to a temporary file, which is closed, fsync'ed and renamed over `path`. A
/// checkpoint interrupted mid-write therefore leaves the previous checkpoint intact. If
/// `body` (or any step before the rename) throws, the temporary file is removed, `path` is
/// untouched, and the error is rethrown.
/// - Returns: `body`'s value. Objects it returns that belong to the file keep the (renamed)
///   file open until they are released.
public func writeHDF5Atomically<R>(to path: String, _ body: (HDF5File) throws -> R) throws -> R {
    try AtomicFile.replace(path) { temporary in try closingAfter(HDF5File.create(temporary, exclusive: true), body) }
}
