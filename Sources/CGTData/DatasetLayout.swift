/// The names and version of the one HDF5 layout cgt trains from (documented in `hdf5_data/README.md`).
///
/// `/<split>/x` float32 or uint8 `[N, features...]`, `/<split>/y` int32 `[N]` for the splits
/// `train`, `test` and optionally `validation`; file attributes `num_classes`, `class_names`,
/// `feature_shape` and `layout_version`. float32 features are normalised already; uint8
/// features (version 2) are normalised by the reader from `normalization_offset` and
/// `normalization_scale`.
public enum DatasetLayout {
    /// The newest layout version this cgt reads and writes.
    public static let version = 2
    /// Version 1: float32 features only. Version 2: also uint8 features, normalised when read.
    public static let readableVersions = 1...version
    public static let features = "x"
    public static let labels = "y"
    /// Per split: the row of each sample in the source data (int64 `[N]`).
    public static let sourceIndex = "source_index"
    /// The most classes a file may declare (per-class tables are sized by it).
    public static let maxClasses = 1 << 20
    /// The most dimensions a sample may have (`feature_shape`: vectors, images, volumes, with room).
    public static let maxFeatureDimensions = 8
    /// The longest class name in bytes: names go into tables, reports and one-line messages.
    public static let maxClassNameBytes = 256

    /// Why `shape` cannot be a `feature_shape` (no dimensions, too many, or one not positive), or nil;
    /// checked where files are read and where they are prepared, so cgt never writes what it refuses.
    public static func featureShapeProblem(_ shape: [Int]) -> String? {
        if shape.count > maxFeatureDimensions {
            return "feature_shape has \(shape.count) dimensions, more than \(maxFeatureDimensions)"
        }
        if shape.isEmpty || !shape.allSatisfy({ $0 > 0 }) {
            return "feature_shape \(shape) must be non-empty and positive"
        }
        return nil
    }

    /// Why `names` cannot be class names (empty, too long, a control character), or nil;
    /// `unique` also refuses a name given twice (names `cgt prepare` makes classes from).
    public static func classNameProblem(_ names: [String], unique: Bool = false) -> String? {
        var seen: Set<String> = []
        for (index, name) in names.enumerated() {
            if name.isEmpty { return "class \(index) has an empty name" }
            if name.utf8.count > maxClassNameBytes {
                return "the name of class \(index) is \(name.utf8.count) bytes long, more than \(maxClassNameBytes)"
            }
            if name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
                return "the name of class \(index) holds a control character (a line break, an escape)"
            }
            if unique && !seen.insert(name).inserted { return "the name '\(name)' is given to two classes" }
        }
        return nil
    }

    /// Attribute names: of the file (`layoutVersion` ... `featureShape`) and of each split group (`classCounts`).
    public enum Attribute {
        public static let layoutVersion = "layout_version"
        public static let numClasses = "num_classes"
        public static let classNames = "class_names"
        public static let featureShape = "feature_shape"
        public static let classCounts = "class_counts"
        /// float64 `[channels]`: x_normalised = (x_source - offset[c]) / scale[c]; applied by the
        /// reader to uint8 features, a record of what was applied for float32 ones.
        public static let normalizationOffset = "normalization_offset"
        public static let normalizationScale = "normalization_scale"
        /// The attributes every cgt dataset file has; the rest (provenance, normalisation) describe it.
        public static let required = [layoutVersion, numClasses, featureShape]
        /// The attributes that define the layout, as opposed to describing how the file was made.
        public static let layout: Set = [layoutVersion, numClasses, classNames, featureShape]
    }
}
