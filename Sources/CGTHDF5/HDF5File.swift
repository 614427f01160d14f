import CHDF5
import Foundation

/// An open HDF5 file; closes itself in `deinit` if `close()` was not called.
///
/// Groups and datasets keep their file alive, so the file handle is never released under
/// them. With HDF5's default (weak) close degree, `close()` while children are still open
/// flushes the file and releases this handle; libhdf5 finishes closing the file when the
/// last child is released.
///
/// libhdf5 is not thread-safe: all HDF5 objects, and every call on them, must stay on one
/// thread (or behind one actor) at a time. Any thread may be that thread: HDF5's error printing
/// is switched off on each thread before its first call (`hdf5Check`).
public final class HDF5File {
    /// Path of the file on disk.
    public let path: String
    /// Whether the file was created or opened for writing.
    public let isWritable: Bool
    private var handle: hid_t?

    private init(handle: hid_t, path: String, isWritable: Bool) {
        self.handle = handle
        self.path = path
        self.isWritable = isWritable
    }

    deinit {
        if let handle { H5Fclose(handle) }
    }

    /// Creates a file at `path`, truncating any existing file; with `exclusive`, fails if
    /// anything exists there, a symbolic link included (`O_CREAT | O_EXCL`), so a link planted
    /// at the name cannot redirect the write.
    ///
    /// Wraps `H5Fcreate`.
    public static func create(_ path: String, exclusive: Bool = false) throws -> HDF5File {
        _ = hdf5FilterLibrariesLoaded
        let handle = try hdf5Check(
            H5Fcreate(path, exclusive ? chdf5_f_acc_excl() : chdf5_f_acc_trunc(), chdf5_p_default(), chdf5_p_default()),
            "H5Fcreate", file: path, object: "")
        return HDF5File(handle: handle, path: path, isWritable: true)
    }

    /// Opens an existing file; a missing or non-HDF5 file throws an `HDF5Error` naming `path`.
    ///
    /// Wraps `H5Fopen`.
    public static func open(_ path: String, writable: Bool = false) throws -> HDF5File {
        _ = hdf5FilterLibrariesLoaded
        // Opening a pipe or a device would block or read without end; a folder gives a cryptic error.
        var status = stat()
        guard stat(path, &status) == 0 else {
            throw HDF5Error(operation: "open", file: path, object: "", message: String(cString: strerror(errno)))
        }
        guard status.st_mode & S_IFMT == S_IFREG else {
            throw HDF5Error(
                operation: "open", file: path, object: "", message: "not a regular file (a folder, a pipe or a device)")
        }
        let flags = writable ? chdf5_f_acc_rdwr() : chdf5_f_acc_rdonly()
        let handle = try hdf5Check(H5Fopen(path, flags, chdf5_p_default()), "H5Fopen", file: path, object: "")
        return HDF5File(handle: handle, path: path, isWritable: writable)
    }

    /// Whether `close()` has not been called yet.
    public var isOpen: Bool { handle != nil }

    var id: hid_t {
        guard let handle else { preconditionFailure("\(path): HDF5 file used after close()") }
        return handle
    }

    /// The root group "/".
    public var root: HDF5Group {
        do {
            return try HDF5Group(
                file: self, path: "/", id: check(H5Gopen2(id, "/", chdf5_p_default()), "H5Gopen2", object: "/"))
        } catch {
            preconditionFailure("\(error)")
        }
    }

    /// Writes buffered data and metadata of this file to the operating system.
    ///
    /// Wraps `H5Fflush`.
    public func flush() throws {
        try check(H5Fflush(id, H5F_SCOPE_LOCAL), "H5Fflush")
    }

    /// Flushes (when writable) and closes the file; calling it again does nothing.
    ///
    /// Wraps `H5Fclose`.
    public func close() throws {
        guard let handle else { return }
        if isWritable { try flush() }
        self.handle = nil
        try check(H5Fclose(handle), "H5Fclose")
    }

    @discardableResult
    func check<R: BinaryInteger>(_ result: @autoclosure () -> R, _ operation: String, object: String = "") throws -> R {
        try hdf5Check(result(), operation, file: path, object: object)
    }
}

/// Opens the file at `path`, runs `body`, and closes the file, whether or not `body` throws.
///
/// An error from `body` takes precedence over an error from closing.
public func withOpenHDF5File<R>(_ path: String, writable: Bool = false, _ body: (HDF5File) throws -> R) throws -> R {
    try closingAfter(HDF5File.open(path, writable: writable), body)
}

/// Creates (truncating) the file at `path`, runs `body`, and closes the file.
public func withNewHDF5File<R>(_ path: String, _ body: (HDF5File) throws -> R) throws -> R {
    try closingAfter(HDF5File.create(path), body)
}

func closingAfter<R>(_ file: HDF5File, _ body: (HDF5File) throws -> R) throws -> R {
    let result: R
    do {
        result = try body(file)
    } catch {
        try? file.close()
        throw error
    }
    try file.close()
    return result
}
