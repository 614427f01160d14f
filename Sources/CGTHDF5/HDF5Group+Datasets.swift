import CHDF5

extension HDF5Group {
    /// Creates a numeric dataset of the given shape (missing intermediate groups are created).
    ///
    /// `chunkRows` stores the data in chunks of that many rows along axis 0 (other axes whole,
    /// clamped to the row count); shuffle and deflate are filters on chunks, so they apply only
    /// to chunked datasets and are ignored otherwise, as is chunking for a dataset with an
    /// empty axis or no axes.
    ///
    /// Wraps `H5Dcreate2`.
    /// - Parameters:
    ///   - type: a numeric element type; strings and `.other` throw.
    ///   - deflateLevel: zlib level, clamped to 0...9.
    public func createDataset(
        _ name: String, type: HDF5ElementType, shape: [Int],
        chunkRows: Int? = nil, deflateLevel: Int? = nil, shuffle: Bool = false
    ) throws -> HDF5Dataset {
        precondition(shape.allSatisfy { $0 >= 0 }, "dataset shape \(shape) has a negative extent")
        let target = childPath(name)
        guard let typeID = type.nativeTypeID else {
            throw error("H5Dcreate2", object: target, "cannot create a dataset of element type \(type)")
        }
        let space = try makeDataspace(shape: shape, object: target)
        defer { H5Sclose(space) }
        let creation = try check(H5Pcreate(chdf5_p_dataset_create()), "H5Pcreate", object: target)
        defer { H5Pclose(creation) }
        if let chunkRows, !shape.isEmpty, !shape.contains(0) {
            var chunk = shape.map { hsize_t($0) }
            chunk[0] = hsize_t(min(max(chunkRows, 1), shape[0]))
            try check(H5Pset_chunk(creation, Int32(chunk.count), chunk), "H5Pset_chunk", object: target)
            if shuffle {
                try check(H5Pset_shuffle(creation), "H5Pset_shuffle", object: target)
            }
            if let deflateLevel {
                try check(
                    H5Pset_deflate(creation, UInt32(min(max(deflateLevel, 0), 9))), "H5Pset_deflate", object: target)
            }
        }
        let linkProperties = try intermediateGroupLinkProperties(object: target)
        defer { H5Pclose(linkProperties) }
        let dataset = try check(
            H5Dcreate2(id, name, typeID, space, linkProperties, creation, chdf5_p_default()), "H5Dcreate2",
            object: target)
        return try HDF5Dataset(file: file, path: target, adopting: dataset)
    }

    /// Opens the existing dataset `name`.
    ///
    /// Wraps `H5Dopen2`.
    ///
    /// Only data the file itself holds is opened: a link to another file (external link), raw
    /// data kept in another file (external storage) or a virtual dataset would make cgt read
    /// files nobody named, and train on data the file's checksum does not cover.
    public func openDataset(_ name: String) throws -> HDF5Dataset {
        let target = childPath(name)
        let opened: hid_t
        do {
            opened = try check(H5Dopen2(id, name, chdf5_dapl_local()), "H5Dopen2", object: target)
        } catch {
            // The error stack is read first: the probe below starts a new one.
            guard let problem = externalLinkProblem(on: name) else { throw error }
            throw self.error("H5Dopen2", object: target, problem)
        }
        let dataset = try HDF5Dataset(file: file, path: target, adopting: opened)
        if let elsewhere = dataset.storedElsewhere {
            throw error(
                "H5Dopen2", object: target,
                "keeps its data in \(elsewhere); cgt reads only data stored in the file itself: make a copy that holds it with h5repack -l CONTI \(file.path) copy.h5 (run where the other files are found)"
            )
        }
        return dataset
    }

    /// The first link on the way to `name` that is an external link, if any, following soft
    /// links: why an open or a lookup refused by the access lists (which never traverse one)
    /// failed, in words.
    public func externalLink(on name: String) -> String? {
        externalLink(on: name, hops: 0)
    }

    /// `externalLink(on:)` as the problem of the object `name`, in words; nil when no
    /// external link is on the way.
    public func externalLinkProblem(on name: String) -> String? {
        guard let link = externalLink(on: name).map(childPath) else { return nil }
        let how =
            link == childPath(name) ? "is a link to another file" : "is reached through \(link), a link to another file"
        return "\(how); cgt reads only data stored in the file itself"
    }

    /// Soft links may point at each other; past this many the path is given up on, as HDF5 does.
    private static let maxSoftLinkHops = 16

    private func externalLink(on name: String, hops: Int) -> String? {
        defer { _ = H5Eclear2(chdf5_e_default()) }
        let anchor = name.hasPrefix("/") ? "/" : ""
        let components = name.split(separator: "/")
        for depth in components.indices {
            let prefix = anchor + components[...depth].joined(separator: "/")
            switch chdf5_link_type(id, prefix, chdf5_lapl_local()) {
            case Int32(H5L_TYPE_EXTERNAL.rawValue):
                return prefix
            case Int32(H5L_TYPE_SOFT.rawValue):
                guard hops < Self.maxSoftLinkHops else { return nil }
                var buffer = [CChar](repeating: 0, count: 4096)
                guard chdf5_soft_link_target(id, prefix, &buffer, buffer.count, chdf5_lapl_local()) == 0 else {
                    return nil
                }
                let rest = components[(depth + 1)...].joined(separator: "/")
                var target = String(cString: buffer)
                if !target.hasPrefix("/") {
                    // A relative soft link is resolved in the group that holds it.
                    let parent = anchor + components[..<depth].joined(separator: "/")
                    target = parent.isEmpty ? target : "\(parent)/\(target)"
                }
                return externalLink(on: rest.isEmpty ? target : "\(target)/\(rest)", hops: hops + 1)
            case let type where type < 0:
                return nil
            default:
                continue
            }
        }
        return nil
    }

    /// Creates a dataset of `T`'s type and writes `values` (row-major) into it.
    public func writeDataset<T: HDF5Scalar>(
        _ name: String, _ values: UnsafeBufferPointer<T>, shape: [Int],
        chunkRows: Int? = nil, deflateLevel: Int? = nil, shuffle: Bool = false
    ) throws {
        precondition(
            shape.reduce(1, *) == values.count,
            "dataset \(name): shape \(shape) holds \(shape.reduce(1, *)) elements, got \(values.count)")
        let dataset = try createDataset(
            name, type: T.hdf5Type, shape: shape, chunkRows: chunkRows, deflateLevel: deflateLevel, shuffle: shuffle)
        try dataset.write(values)
    }

    /// Creates a dataset of `T`'s type and writes `values` (row-major) into it.
    public func writeDataset<T: HDF5Scalar>(
        _ name: String, _ values: [T], shape: [Int],
        chunkRows: Int? = nil, deflateLevel: Int? = nil, shuffle: Bool = false
    ) throws {
        try values.withUnsafeBufferPointer {
            try writeDataset(name, $0, shape: shape, chunkRows: chunkRows, deflateLevel: deflateLevel, shuffle: shuffle)
        }
    }
}

extension HDF5Object {
    /// A new dataspace: scalar for an empty `shape`, simple otherwise. The caller closes it.
    func makeDataspace(shape: [Int], object: String? = nil) throws -> hid_t {
        if shape.isEmpty {
            return try check(H5Screate(H5S_SCALAR), "H5Screate", object: object)
        }
        let dims = shape.map { hsize_t($0) }
        return try check(H5Screate_simple(Int32(dims.count), dims, nil), "H5Screate_simple", object: object)
    }
}
