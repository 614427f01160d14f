import Foundation

/// Replaces files so that readers see the old file or the whole new one, never a part: every
/// file cgt writes (checkpoints, datasets, metrics, reports) goes through here.
///
/// The new contents go to "<path>.tmp-<pid>-<random>" in the same folder, a name nobody can
/// guess, created exclusively (`O_CREAT | O_EXCL | O_NOFOLLOW`: never through a link planted
/// there, so another user of a shared file system cannot redirect the write); it takes the
/// permissions of the file it replaces (a checkpoint made private stays private), is fsync'ed,
/// renamed over `path`, and the folder fsync'ed so that the rename survives a crash. A failure at
/// any step before the rename removes the temporary file and leaves `path` untouched.
public enum AtomicFile {
    /// Replaces `path` by what `write` puts at the temporary path it is given (and closes); the
    /// writer must create that file exclusively (`createExclusively`, `HDF5File.create(_:exclusive:)`).
    /// - Returns: `write`'s value.
    public static func replace<R>(_ path: String, _ write: (_ temporaryPath: String) throws -> R) throws -> R {
        removeLeftovers(of: path)
        let temporary = temporaryPath(for: path)
        let result: R
        do {
            result = try write(temporary)
            try synchronize(temporary, keepingPermissionsOf: path)
            try check(rename(temporary, path), "rename", temporary)
        } catch let error as LocatedError where error.location.first == temporary {
            // The user asked for `path`; the temporary name is a detail of how it is written.
            unlink(temporary)
            throw PathError(location: [path] + error.location.dropFirst(), problem: error.problem)
        } catch {
            unlink(temporary)
            throw error
        }
        try synchronizeFolder(of: path)
        return result
    }

    /// Replaces `path` by `data`.
    public static func write(_ data: Data, to path: String) throws {
        try replace(path) { temporary in
            let descriptor = try createExclusively(temporary)
            defer { close(descriptor) }
            try writeAll(data, to: descriptor, path: temporary)
        }
    }

    /// Appends `data` to `path` (created if missing, never through a link) and flushes it to
    /// disk. Not a replacement: for a log written a line at a time (`metrics.jsonl`), where a
    /// kill leaves at most its last line cut short, which its readers know to leave out.
    public static func append(_ data: Data, to path: String) throws {
        let descriptor = try check(
            open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o644), "open", path)
        defer { close(descriptor) }
        try writeAll(data, to: descriptor, path: path)
        try check(fsync(descriptor), "fsync", path)
    }

    /// Writes all of `data` to `descriptor`, open on `path`, through short and interrupted writes.
    static func writeAll(_ data: Data, to descriptor: Int32, path: String) throws {
        try data.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = Foundation.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                if written < 0 && errno == EINTR { continue }
                try check(Int32(written < 0 ? -1 : 0), "write", path)
                offset += written
            }
        }
    }

    /// Makes `path` name the same file as `existing` (a hard link), replacing it atomically:
    /// `last.h5` follows the newest checkpoint without a copy.
    public static func link(_ existing: String, to path: String) throws {
        let temporary = temporaryPath(for: path)
        do {
            try check(Foundation.link(existing, temporary), "link to \(existing)", temporary)
            try check(rename(temporary, path), "rename", temporary)
        } catch let error as LocatedError where error.location.first == temporary {
            unlink(temporary)
            throw PathError(location: [path] + error.location.dropFirst(), problem: error.problem)
        }
        try synchronizeFolder(of: path)
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

    /// Removes the temporary files that killed writers of `path` left next to it: those whose
    /// process is gone. A writer of `path` that is still running (another process on this
    /// machine) keeps its file. Every `replace` of `path` starts with this, so a `cgt prepare`
    /// killed with SIGKILL leaves its megabytes only until the next write of the same file.
    public static func removeLeftovers(of path: String) {
        let folder = folder(of: path)
        let prefix = (path as NSString).lastPathComponent + temporaryMarker
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return }
        for name in names where name.hasPrefix(prefix) {
            // "<pid>-<random hex>", as `temporaryPath` makes it.
            let parts = name.dropFirst(prefix.count).split(separator: "-")
            guard parts.count == 2, let pid = pid_t(parts[0]), pid > 0, UInt64(parts[1], radix: 16) != nil,
                kill(pid, 0) != 0 && errno == ESRCH
            else { continue }
            unlink("\(folder)/\(name)")
        }
    }

    /// Removes the temporary files a killed writer left in `folder` (not its subfolders), whatever
    /// process made them: for a folder this process holds alone (a locked run folder).
    public static func removeLeftovers(in folder: String) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return }
        for name in names where name.contains(temporaryMarker) { unlink("\(folder)/\(name)") }
    }

    static func folder(of path: String) -> String {
        let parent = (path as NSString).deletingLastPathComponent
        return parent.isEmpty ? "." : parent
    }

    /// Flushes the entry of a renamed file; by then `path` holds the new file, so a failure
    /// says that the file is written and only its durability across a power loss is in doubt.
    /// File systems that cannot flush a folder (EINVAL) have nothing to flush.
    static func synchronizeFolder(of path: String) throws {
        let parent = folder(of: path)
        let descriptor = try check(open(parent, O_RDONLY | O_DIRECTORY), "open", parent)
        defer { close(descriptor) }
        guard fsync(descriptor) != 0 else { return }
        let failure = errno
        guard failure != EINVAL else { return }
        throw FileError(
            operation: "fsync", path: parent,
            reason:
                "\(String(cString: strerror(failure))) (\((path as NSString).lastPathComponent) is written, but may not survive a power loss)"
        )
    }

    /// Flushes a file's contents to stable storage, giving it the permission bits of the
    /// regular file at `path` if there is one (through the open descriptor, never a path that
    /// could be swapped for a link).
    static func synchronize(_ temporary: String, keepingPermissionsOf path: String) throws {
        let descriptor = try check(open(temporary, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), "open", temporary)
        defer { close(descriptor) }
        var old = stat()
        if lstat(path, &old) == 0, (old.st_mode & S_IFMT) == S_IFREG {
            try check(fchmod(descriptor, old.st_mode & 0o7777), "chmod", temporary)
        }
        try check(fsync(descriptor), "fsync", temporary)
    }

    @discardableResult
    static func check(_ result: Int32, _ operation: String, _ path: String) throws -> Int32 {
        guard result >= 0 else {
            throw FileError(operation: operation, path: path, reason: String(cString: strerror(errno)))
        }
        return result
    }
}
