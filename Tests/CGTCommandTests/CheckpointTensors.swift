import CGTHDF5

/// Every float dataset of a checkpoint file (model, training buffers, optimizer state) by path:
/// what "bitwise the same run" compares.
func checkpointTensors(_ path: String) throws -> [String: [Float]] {
    try withOpenHDF5File(path) { file in
        var values: [String: [Float]] = [:]
        func collect(_ group: HDF5Group, _ prefix: String) throws {
            for name in try group.memberNames() {
                if group.isGroup(name) {
                    try collect(try group.openGroup(name), "\(prefix)/\(name)")
                } else {
                    let dataset = try group.openDataset(name)
                    if dataset.elementType == .float32 {
                        values["\(prefix)/\(name)"] = try dataset.readAll(as: Float.self)
                    }
                }
            }
        }
        try collect(file.root, "")
        return values
    }
}
