import Foundation
import XCTest

/// Where chunk `index` of `/train/x` is stored (`index` a Python expression over `x`, the
/// h5py dataset): its byte offset and size, found with h5py. Skips the test without h5py.
func trainChunkLocation(of path: String, index: String) throws -> (offset: UInt64, size: Int) {
    guard try CommandRunner.run("/usr/bin/python3", ["-c", "import h5py"]).status == 0 else {
        throw XCTSkip("/usr/bin/python3 with h5py is missing (launch/setup installs python3-h5py)")
    }
    let located = try CommandRunner.run(
        "/usr/bin/python3",
        [
            "-c",
            "import h5py, sys; x = h5py.File(sys.argv[1])['train/x']; i = x.id.get_chunk_info(\(index)); print(i.byte_offset, i.size)",
            path,
        ])
    let numbers = located.stdout.split(separator: " ").compactMap {
        UInt64($0.trimmingCharacters(in: .whitespacesAndNewlines))
    }
    guard numbers.count == 2 else { throw XCTSkip("chunk \(index) of \(path) not located: \(located.stderr)") }
    return (numbers[0], Int(numbers[1]))
}

/// Overwrites the stored chunk at `location` but for its first and last two bytes, in place,
/// so that it no longer inflates.
func damageChunk(of path: String, at location: (offset: UInt64, size: Int)) throws {
    let file = try FileHandle(forUpdating: URL(fileURLWithPath: path))
    try file.seek(toOffset: location.offset + 2)
    try file.write(contentsOf: Data(repeating: 0xFF, count: location.size - 4))
    try file.close()
}
