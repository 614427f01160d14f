import Foundation

/// Folders cgt writes into (a run, an evaluation, figures), made with errors that name them.
public enum OutputFolder {
    /// Refuses `path` when something other than a folder is there (checked before long work,
    /// so a wrong `--out` fails at once instead of after training or evaluation).
    public static func check(_ path: String) throws {
        var status = stat()
        if stat(path, &status) != 0 {
            switch errno {
            case ENOENT: return
            case ENOTDIR:
                throw PathError(location: [path], problem: "cannot be a folder: a part of the path is a file")
            default: throw FileError(operation: "stat", path: path, reason: String(cString: strerror(errno)))
            }
        }
        guard status.st_mode & S_IFMT == S_IFDIR else {
            throw PathError(location: [path], problem: "is a file, not a folder; give a folder for the output")
        }
    }

    /// Makes `path` and the folders above it, as `mkdir -p` does.
    public static func create(_ path: String) throws {
        try check(path)
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            let reason = ((error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError).map {
                String(cString: strerror(Int32($0.code)))
            }
            throw FileError(operation: "mkdir", path: path, reason: reason ?? error.localizedDescription)
        }
    }
}
