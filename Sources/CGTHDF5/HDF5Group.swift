import CHDF5

/// A group: a directory of named links to datasets and other groups.
///
/// Names passed to its methods may be nested ("exits/0/linear"), relative to this group, or
/// absolute ("/train/x").
public final class HDF5Group: HDF5Object {
    /// Creates the group `name`, creating missing intermediate groups along the way.
    ///
    /// Wraps `H5Gcreate2`.
    public func createGroup(_ name: String) throws -> HDF5Group {
        let target = childPath(name)
        let linkProperties = try intermediateGroupLinkProperties(object: target)
        defer { H5Pclose(linkProperties) }
        let group = try check(
            H5Gcreate2(id, name, linkProperties, chdf5_p_default(), chdf5_p_default()), "H5Gcreate2", object: target)
        return HDF5Group(file: file, path: target, id: group)
    }

    /// Opens the existing group `name`.
    ///
    /// Wraps `H5Gopen2`.
    public func openGroup(_ name: String) throws -> HDF5Group {
        let target = childPath(name)
        let group = try check(H5Gopen2(id, name, chdf5_gapl_local()), "H5Gopen2", object: target)
        return HDF5Group(file: file, path: target, id: group)
    }

    /// Whether a link named `name` exists; for a nested name, every component must exist.
    ///
    /// `H5Lexists` only accepts a path whose intermediate components exist, so each prefix is
    /// checked in turn.
    public func contains(_ name: String) -> Bool {
        let components = name.split(separator: "/")
        let anchor = name.hasPrefix("/") ? "/" : ""
        for depth in components.indices {
            let prefix = anchor + components[...depth].joined(separator: "/")
            if H5Lexists(id, prefix, chdf5_lapl_local()) <= 0 {
                _ = H5Eclear2(chdf5_e_default())
                return false
            }
        }
        return true
    }

    /// Names of the links directly in this group, sorted.
    ///
    /// Wraps `H5Gget_info` and `H5Lget_name_by_idx`.
    public func memberNames() throws -> [String] {
        var info = H5G_info_t()
        try check(H5Gget_info(id, &info), "H5Gget_info")
        var names: [String] = []
        names.reserveCapacity(Int(info.nlinks))
        for index in 0..<info.nlinks {
            let length = try check(
                H5Lget_name_by_idx(id, ".", H5_INDEX_NAME, H5_ITER_INC, index, nil, 0, chdf5_p_default()),
                "H5Lget_name_by_idx")
            var bytes = [CChar](repeating: 0, count: Int(length) + 1)
            try check(
                H5Lget_name_by_idx(id, ".", H5_INDEX_NAME, H5_ITER_INC, index, &bytes, bytes.count, chdf5_p_default()),
                "H5Lget_name_by_idx")
            names.append(String(cString: bytes))
        }
        return names.sorted()
    }

    /// Whether `name` exists and is a group (rather than a dataset or named type).
    public func isGroup(_ name: String) -> Bool {
        guard contains(name) else { return false }
        let object = H5Oopen(id, name, chdf5_lapl_local())
        guard object >= 0 else {
            _ = H5Eclear2(chdf5_e_default())
            return false
        }
        defer { H5Oclose(object) }
        return H5Iget_type(object) == H5I_GROUP
    }

    /// A link creation property list that creates missing intermediate groups.
    func intermediateGroupLinkProperties(object: String) throws -> hid_t {
        let properties = try check(H5Pcreate(chdf5_p_link_create()), "H5Pcreate", object: object)
        do {
            try check(
                H5Pset_create_intermediate_group(properties, 1), "H5Pset_create_intermediate_group", object: object)
        } catch {
            H5Pclose(properties)
            throw error
        }
        return properties
    }
}
