/// One of the splits a dataset file holds; the raw value is its HDF5 group (`/train`, ...).
///
/// Training reads `train`, thresholds are chosen on `validation` (or `train` when a file has
/// none) and reported on `test`: which split a read or a report is of selects what it is used
/// for, so the names are a closed set rather than strings. Encodes as the group name, so
/// `eval.json` and `cgt inspect --json` read as before.
public enum DatasetSplitName: String, CaseIterable, Codable, Sendable, CustomStringConvertible {
    case train
    case validation
    case test

    /// The HDF5 group name, also in messages.
    public var description: String { rawValue }
}
