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
    /// Per split: the row of each sample in the source data (int64 `[N]`).
    public static let sourceIndex = "source_index"
    /// The most classes a file may declare (per-class tables are sized by it).
    public static let maxClasses = 1 << 20

    /// Attribute names: of the file (`layoutVersion` ... `featureShape`) and of each split group (`classCounts`).
    public enum Attribute {
        public static let layoutVersion = "layout_version"
        public static let numClasses = "num_classes"
        public static let classNames = "class_names"
        public static let featureShape = "feature_shape"
        public static let classCounts = "class_counts"
        /// The attributes every cgt dataset file has; the rest (provenance, normalisation) describe it.
        public static let required = [layoutVersion, numClasses, featureShape]
        /// The attributes that define the layout, as opposed to describing how the file was made.
        public static let layout: Set = [layoutVersion, numClasses, classNames, featureShape]
    }
}
