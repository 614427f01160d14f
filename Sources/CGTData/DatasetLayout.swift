/// The names and version of the one HDF5 layout cgt trains from (documented in `hdf5_data/README.md`).
///
/// `/<split>/x` float32 `[N, features...]`, `/<split>/y` int32 `[N]` for the splits `train`,
/// `test` and optionally `validation`; file attributes `num_classes`, `class_names`,
/// `feature_shape` and `layout_version`. Normalisation is already applied.
public enum DatasetLayout {
    public static let version = 1
    public static let train = "train"
    public static let test = "test"
    public static let validation = "validation"
    public static let splitNames = [train, validation, test]
    public static let features = "x"
    public static let labels = "y"
}
