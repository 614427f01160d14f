#ifndef CHDF5_SHIM_H
#define CHDF5_SHIM_H

// Swift cannot import HDF5's property-list, type and flag macros: most expand to
// `(H5OPEN H5T_NATIVE_FLOAT_g)`, which calls H5open() and reads a global. Each one is
// re-exported here as a prefixed static inline getter.

#include <hdf5.h>

static inline hid_t chdf5_p_default(void) { return H5P_DEFAULT; }
static inline hid_t chdf5_s_all(void) { return H5S_ALL; }
static inline hid_t chdf5_e_default(void) { return H5E_DEFAULT; }
static inline hid_t chdf5_invalid_hid(void) { return H5I_INVALID_HID; }

static inline unsigned chdf5_f_acc_trunc(void) { return H5F_ACC_TRUNC; }
static inline unsigned chdf5_f_acc_excl(void) { return H5F_ACC_EXCL; }
static inline unsigned chdf5_f_acc_rdonly(void) { return H5F_ACC_RDONLY; }
static inline unsigned chdf5_f_acc_rdwr(void) { return H5F_ACC_RDWR; }

static inline hid_t chdf5_p_file_create(void) { return H5P_FILE_CREATE; }
static inline hid_t chdf5_p_file_access(void) { return H5P_FILE_ACCESS; }
static inline hid_t chdf5_p_dataset_create(void) { return H5P_DATASET_CREATE; }
static inline hid_t chdf5_p_dataset_xfer(void) { return H5P_DATASET_XFER; }
static inline hid_t chdf5_p_link_create(void) { return H5P_LINK_CREATE; }

static inline hid_t chdf5_native_float(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t chdf5_native_double(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t chdf5_native_int8(void) { return H5T_NATIVE_INT8; }
static inline hid_t chdf5_native_int16(void) { return H5T_NATIVE_INT16; }
static inline hid_t chdf5_native_int32(void) { return H5T_NATIVE_INT32; }
static inline hid_t chdf5_native_int64(void) { return H5T_NATIVE_INT64; }
static inline hid_t chdf5_native_uint8(void) { return H5T_NATIVE_UINT8; }
static inline hid_t chdf5_native_uint16(void) { return H5T_NATIVE_UINT16; }
static inline hid_t chdf5_native_uint32(void) { return H5T_NATIVE_UINT32; }
static inline hid_t chdf5_native_uint64(void) { return H5T_NATIVE_UINT64; }
static inline hid_t chdf5_c_s1(void) { return H5T_C_S1; }

static inline unsigned chdf5_f_obj_all(void) { return H5F_OBJ_ALL; }

static inline size_t chdf5_variable(void) { return H5T_VARIABLE; }
static inline hsize_t chdf5_s_unlimited(void) { return H5S_UNLIMITED; }

static inline H5Z_filter_t chdf5_filter_deflate(void) { return H5Z_FILTER_DEFLATE; }
static inline H5Z_filter_t chdf5_filter_shuffle(void) { return H5Z_FILTER_SHUFFLE; }
static inline H5Z_filter_t chdf5_filter_fletcher32(void) { return H5Z_FILTER_FLETCHER32; }
static inline H5Z_filter_t chdf5_filter_szip(void) { return H5Z_FILTER_SZIP; }
static inline H5Z_filter_t chdf5_filter_nbit(void) { return H5Z_FILTER_NBIT; }
static inline H5Z_filter_t chdf5_filter_scaleoffset(void) { return H5Z_FILTER_SCALEOFFSET; }

// The type of the link `name` in `loc` (H5L_TYPE_HARD, H5L_TYPE_SOFT, H5L_TYPE_EXTERNAL),
// negative when it cannot be read; `lapl` decides which links on the way are traversed.
// H5L_info_t and H5Lget_info name the 1.12 forms there too.
static inline int chdf5_link_type(hid_t loc, const char *name, hid_t lapl) {
    H5L_info_t info;
    if (H5Lget_info(loc, name, &info, lapl) < 0) return -1;
    return info.type;
}

// The path a soft link `name` in `loc` points to, into `buffer` (NUL-terminated, cut to
// `size`); negative when `name` is not a soft link or cannot be read.
static inline int chdf5_soft_link_target(hid_t loc, const char *name, char *buffer, size_t size, hid_t lapl) {
    H5L_info_t info;
    if (size == 0 || H5Lget_info(loc, name, &info, lapl) < 0 || info.type != H5L_TYPE_SOFT) return -1;
    if (H5Lget_val(loc, name, buffer, size, lapl) < 0) return -1;
    buffer[size - 1] = 0;
    return 0;
}

// Access property lists that refuse to traverse external links (links to other files), so
// reading a file never opens another one, however the links inside it are chained.
static inline herr_t chdf5_refuse_external_link(const char *parent_file, const char *parent_group,
    const char *child_file, const char *child_object, unsigned *acc_flags, hid_t fapl_id, void *op_data) {
    (void)parent_file; (void)parent_group; (void)child_file; (void)child_object;
    (void)acc_flags; (void)fapl_id; (void)op_data;
    return -1;
}
static inline hid_t chdf5_local_access(hid_t property_class) {
    hid_t list = H5Pcreate(property_class);
    if (list >= 0 && H5Pset_elink_cb(list, chdf5_refuse_external_link, NULL) < 0) {
        H5Pclose(list);
        return -1;
    }
    return list;
}
static inline hid_t chdf5_lapl_local(void) {
    static hid_t list = -1;
    if (list < 0) list = chdf5_local_access(H5P_LINK_ACCESS);
    return list;
}
static inline hid_t chdf5_dapl_local(void) {
    static hid_t list = -1;
    if (list < 0) list = chdf5_local_access(H5P_DATASET_ACCESS);
    return list;
}
static inline hid_t chdf5_gapl_local(void) {
    static hid_t list = -1;
    if (list < 0) list = chdf5_local_access(H5P_GROUP_ACCESS);
    return list;
}

// Frees the strings HDF5 allocated while reading variable-length data. H5Treclaim replaces
// H5Dvlen_reclaim in 1.12 (the 1.10.8 headers declare it, but the 1.10 library lacks it).
static inline herr_t chdf5_reclaim(hid_t type_id, hid_t space_id, void *buf) {
#if H5_VERSION_GE(1, 12, 0)
    return H5Treclaim(type_id, space_id, H5P_DEFAULT, buf);
#else
    return H5Dvlen_reclaim(type_id, space_id, H5P_DEFAULT, buf);
#endif
}

#endif
