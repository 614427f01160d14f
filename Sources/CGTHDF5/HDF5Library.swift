import CHDF5

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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

    /// The folders HDF5 searches for filter plugins, in order (`HDF5_PLUGIN_PATH`, else the
    /// folder it was built with).
    ///
    /// Wraps `H5PLsize` and `H5PLget`.
    public static var pluginFolders: [String] {
        var count: UInt32 = 0
        guard H5PLsize(&count) >= 0 else { return [] }
        return (0..<count).compactMap { index in
            var buffer = [CChar](repeating: 0, count: 4096)
            guard H5PLget(index, &buffer, buffer.count) > 0 else { return nil }
            return String(cString: buffer)
        }
    }
}

/// Loads, once and before any file is opened, the compression libraries that Debian's filter
/// plugins call without naming them.
///
/// Debian's hdf5-plugin-lzf (3.7.0-8, bookworm) ships `liblzf_filter.so` with `lzf_compress`
/// and `lzf_decompress` undefined and no dependency on liblzf, so HDF5's `dlopen` of the plugin
/// fails ("undefined symbol: lzf_decompress") and LZF data looks undecodable. With liblzf
/// (package liblzf1) in the process's global symbols first, the plugin resolves them. A library
/// that is missing is no error: the filter then shows as unavailable, and the refusal names
/// the packages to install.
let hdf5FilterLibrariesLoaded: Void = {
    for library in ["liblzf.so.1"] { _ = dlopen(library, RTLD_NOW | RTLD_GLOBAL) }
}()
