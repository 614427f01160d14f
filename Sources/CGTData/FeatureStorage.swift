/// How `/<split>/x` holds the features.
///
/// `float32` holds them normalised, ready to train on. `uint8` holds the source's integer
/// values (pixels) and the reader applies the file's normalisation attributes when it reads
/// rows: a quarter of the bytes on disk and in the page cache, and the same numbers in
/// training, since the reader computes each value by the formula `cgt prepare` uses for a
/// float32 file (`Normalization.apply`).
public enum FeatureStorage: String, CaseIterable, Sendable {
    case float32
    case uint8

    /// The oldest layout version that describes such a file: a float32 file stays readable by
    /// a cgt that knows only version 1.
    public var layoutVersion: Int {
        switch self {
        case .float32: return 1
        case .uint8: return 2
        }
    }

    /// Bytes per stored feature value.
    public var elementSize: Int {
        switch self {
        case .float32: return 4
        case .uint8: return 1
        }
    }
}

/// Whether the chunks of a dataset file are compressed.
public enum DatasetCompression: String, CaseIterable, Sendable {
    /// The shuffle filter and deflate (zlib) level 4: every HDF5 reader decodes it.
    case gzip
    /// Chunks stored as they are: larger files, no decompression when reading.
    case none

    var deflateLevel: Int? {
        switch self {
        case .gzip: return 4
        case .none: return nil
        }
    }
}

/// What reading rows of a dataset file cost: stored (compressed) bytes of the chunks read,
/// the same chunks' bytes once decompressed, and the seconds spent (in the caller's clock).
public struct DataReadCounters: Equatable, Sendable {
    public var bytesRead: Int64 = 0
    public var bytesDecompressed: Int64 = 0
    public var seconds: Double = 0

    public init(bytesRead: Int64 = 0, bytesDecompressed: Int64 = 0, seconds: Double = 0) {
        self.bytesRead = bytesRead
        self.bytesDecompressed = bytesDecompressed
        self.seconds = seconds
    }

    public static func - (a: DataReadCounters, b: DataReadCounters) -> DataReadCounters {
        DataReadCounters(
            bytesRead: a.bytesRead - b.bytesRead, bytesDecompressed: a.bytesDecompressed - b.bytesDecompressed,
            seconds: a.seconds - b.seconds)
    }

    public static func + (a: DataReadCounters, b: DataReadCounters) -> DataReadCounters {
        DataReadCounters(
            bytesRead: a.bytesRead + b.bytesRead, bytesDecompressed: a.bytesDecompressed + b.bytesDecompressed,
            seconds: a.seconds + b.seconds)
    }
}
