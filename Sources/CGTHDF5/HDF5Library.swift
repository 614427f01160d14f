import CHDF5

/// Process-wide settings of libhdf5.
public enum HDF5Library {
    /// Stops libhdf5 from force-closing, at process exit, objects that are still open.
    ///
    /// When a write fails (a full disk), libhdf5 1.10 keeps the dataset whose close failed in a
    /// half-closed state, and closing it again at exit crashes the process after its error was
    /// reported. Files cgt writes are closed explicitly (and removed when writing failed), so
    /// nothing is lost by skipping that cleanup. Must run before any other HDF5 call; later it
    /// has no effect.
    ///
    /// Wraps `H5dont_atexit`.
    public static func skipCleanupAtExit() {
        _ = H5dont_atexit()
    }
}
