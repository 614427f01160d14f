import Foundation

/// What identifies a file's content cheaply: the inode, size and modification time.
struct FileState: Equatable {
    var device: UInt64
    var inode: UInt64
    var size: Int64
    var modified: timespec

    init?(path: String) {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        device = UInt64(status.st_dev)
        inode = UInt64(status.st_ino)
        size = Int64(status.st_size)
        modified = status.st_mtim
    }

    static func == (a: FileState, b: FileState) -> Bool {
        a.device == b.device && a.inode == b.inode && a.size == b.size && a.modified.tv_sec == b.modified.tv_sec
            && a.modified.tv_nsec == b.modified.tv_nsec
    }
}

extension DatasetReader {
    /// Refuses to go on reading a file that was written, replaced or removed since it was
    /// opened: training reads it again every epoch, and rows of two versions would mix.
    public func checkUnchanged() throws {
        checks += 1
        if checks == stopAtCheck { raise(SIGSTOP) }
        guard let openedAs else { return }
        guard let now = FileState(path: path) else {
            throw DatasetError(
                file: path, object: "",
                "was removed or renamed while training read it; put it back and resume from the last checkpoint (--resume)"
            )
        }
        guard now == openedAs else {
            throw DatasetError(
                file: path, object: "",
                "changed while training read it (\(now.inode != openedAs.inode ? "replaced" : "written"), size \(openedAs.size) -> \(now.size) bytes); training reads it every epoch and would mix two versions: resume from the last checkpoint (--resume) once it is whole"
            )
        }
    }
}
