import Foundation

/// Replaces files so that readers see the old file or the whole new one, never a part: every
/// file cgt writes (checkpoints, datasets, metrics, reports) goes through here.
///
/// The new contents go to "<path>.tmp-<pid>-<random>" in the same folder, a name nobody can
/// guess, created exclusively (`O_CREAT | O_EXCL | O_NOFOLLOW`: never through a link planted
/// there, so another user of a shared file system cannot redirect the write); it is fsync'ed, renamed
/// over `path`, and the folder fsync'ed so that the rename survives a crash. A failure at any
/// step before the rename removes the temporary file and leaves `path` untouched.
public enum AtomicFile {
    /// Replaces `path` by what `write` puts at the temporary path it is given (and closes); the
    /// writer must create that file exclusively (`createExclusively`, `HDF5File.create(_:exclusive:)`).
    /// - Returns: `write`'s value.
    public static func replace<R>(_ path: String, _ write: (_ temporaryPath: String) throws -> R) throws -> R {
        let temporary = temporaryPath(for: path)
        let result: R
        do {
            result = try write(temporary)
            try synchronize(temporary, folder: false)
            try check(rename(temporary, path), "rename", temporary)
        } catch {
            unlink(temporary)
            throw error
        }
        try synchronize(folder(of: path), folder: true)
        return result
    }

    /// Replaces `path` by `data`.
    public static func write(_ data: Data, to path: String) throws {
        try replace(path) { temporary in
            let descriptor = try createExclusively(temporary)
            defer { close(descriptor) }
            try data.withUnsafeBytes { bytes in
                var offset = 0
                while offset < bytes.count {
                    let written = Foundation.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                    if written < 0 && errno == EINTR { continue }
                    try check(Int32(written < 0 ? -1 : 0), "write", temporary)
                    offset += written
                }
            }
        }
    }

    /// Makes `path` name the same file as `existing` (a hard link), replacing it atomically:
    /// `last.h5` follows the newest checkpoint without a copy.
    public static func link(_ existing: String, to path: String) throws {
        let temporary = temporaryPath(for: path)
        try check(Foundation.link(existing, temporary), "link", existing)
        do {
            try check(rename(temporary, path), "rename", temporary)
        } catch {
            unlink(temporary)
            throw error
        }
        try synchronize(folder(of: path), folder: true)
    }

    /// Creates `path` for writing, failing if anything (a link included) is there already.
    public static func createExclusively(_ path: String) throws -> Int32 {
        try check(open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644), "open", path)
    }

    /// What every temporary name contains, so that leftovers of a killed writer can be found.
    public static let temporaryMarker = ".tmp-"

    static func temporaryPath(for path: String) -> String {
        "\(path)\(temporaryMarker)\(getpid())-\(String(UInt64.random(in: 0...UInt64.max), radix: 16))"
    }

    /// Removes the temporary files a killed writer left in `folder` (not its subfolders).
    public static func removeLeftovers(in folder: String) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return }
        for name in names where name.contains(temporaryMarker) { unlink("\(folder)/\(name)") }
    }

    static func folder(of path: String) -> String {
        let parent = (path as NSString).deletingLastPathComponent
        return parent.isEmpty ? "." : parent
    }

    /// Flushes a file's contents, or a folder's entries, to stable storage.
    static func synchronize(_ path: String, folder: Bool) throws {
        let descriptor = try check(open(path, folder ? O_RDONLY | O_DIRECTORY : O_RDONLY), "open", path)
        defer { close(descriptor) }
        try check(fsync(descriptor), "fsync", path)
    }

    @discardableResult
    static func check(_ result: Int32, _ operation: String, _ path: String) throws -> Int32 {
        guard result >= 0 else {
            throw FileError(operation: operation, path: path, reason: String(cString: strerror(errno)))
        }
        return result
    }
}
