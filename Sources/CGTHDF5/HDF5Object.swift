import CHDF5

/// A group or dataset inside an open file: owns its HDF5 handle and closes it in `deinit`.
///
/// Holds a strong reference to its `HDF5File`, so the file outlives every object opened from
/// it. Like everything in libhdf5, use it from one thread only.
public class HDF5Object: HDF5AttributeHolder {
    /// The file this object lives in.
    public let file: HDF5File
    /// Absolute path inside the file, e.g. "/" or "/train/x".
    public let path: String
    let id: hid_t

    init(file: HDF5File, path: String, id: hid_t) {
        self.file = file
        self.path = path
        self.id = id
    }

    deinit {
        H5Oclose(id)
    }

    /// Path of the file on disk.
    public var filePath: String { file.path }

    /// The absolute path of `name` relative to this object.
    func childPath(_ name: String) -> String {
        if name.hasPrefix("/") { return name }
        return path.hasSuffix("/") ? path + name : path + "/" + name
    }

    @discardableResult
    func check<R: BinaryInteger>(_ result: @autoclosure () -> R, _ operation: String, object: String? = nil) throws
        -> R
    {
        try hdf5Check(result(), operation, file: file.path, object: object ?? path)
    }

    func error(_ operation: String, object: String? = nil, _ message: String) -> HDF5Error {
        HDF5Error(operation: operation, file: file.path, object: object ?? path, message: message)
    }
}
