import CGTFiles
import CGTHDF5
import Foundation

/// Opens a dataset file, checks it against `DatasetLayout`, and reads splits or row ranges of them.
///
/// The structure (datasets, shapes, dtypes, attributes) is checked when the file is opened;
/// labels and feature values are checked as they are read, so a rank that reads only its
/// shard checks only its shard. All calls must stay on one thread (libhdf5 is not thread-safe).
public final class DatasetReader {
    public let path: String
    public let classes: Int
    public let classNames: [String]
    /// Whether the file names its classes (`class_names`); else `classNames` are "class 0", ....
    public let namesClasses: Bool
    public let featureShape: [Int]
    /// The number of samples of each split present in the file.
    public let splitSizes: [DatasetSplitName: Int]
    /// How each split's `x` is stored; `uint8` rows are normalised as they are read.
    public let storage: [DatasetSplitName: FeatureStorage]
    /// The map applied to uint8 features when read (from the file's normalisation attributes);
    /// nil when every split is float32.
    public let byteNormalization: Normalization?
    /// What every read so far has cost: stored and decompressed bytes of the chunks read, and
    /// the seconds spent reading, converting and checking.
    public internal(set) var counters = DataReadCounters()
    let file: HDF5File
    /// The file's identity and state when opened (`checkUnchanged`).
    let openedAs: FileState?
    /// A fail point for tests (`CGT_TEST_STOP_AT_READ_CHECK=n`): the process stops itself
    /// (SIGSTOP) at its n-th `checkUnchanged`, the start of an epoch's read, so that a test can
    /// change the file at a known point (after the first epoch's read, before the read ahead of
    /// the second) instead of racing the reads.
    let stopAtCheck = Int(ProcessInfo.processInfo.environment["CGT_TEST_STOP_AT_READ_CHECK"] ?? "")
    var checks = 0
    /// Every label of a split `read(split:rowIndices:)` has read from, kept (`allLabels(of:)`).
    var labelCache: [DatasetSplitName: [Int32]] = [:]

    public init(path: String) throws {
        self.path = path
        openedAs = FileState(path: path)
        // HDF5File.open refuses what is not a regular file (a folder, a pipe) before libhdf5 sees it.
        do {
            file = try HDF5File.open(path)
        } catch {
            throw DatasetError(
                file: path, object: "", "cannot open as HDF5 (\((error as? HDF5Error)?.message ?? "\(error)"))")
        }
        let root = file.root
        func fail(_ object: String, _ problem: String) -> DatasetError {
            DatasetError(file: path, object: object, problem)
        }
        for attribute in DatasetLayout.Attribute.required where !root.hasAttribute(attribute) {
            throw fail("/", "missing file attribute '\(attribute)' (see hdf5_data/README.md)")
        }
        let version = try root.intAttribute(DatasetLayout.Attribute.layoutVersion)
        guard DatasetLayout.readableVersions.contains(version) else {
            let readable = DatasetLayout.readableVersions
            throw fail(
                "/",
                "layout_version is \(version), this cgt reads versions \(readable.lowerBound) to \(readable.upperBound)\(version > readable.upperBound ? " (a newer cgt wrote the file)" : "")"
            )
        }
        classes = try root.intAttribute(DatasetLayout.Attribute.numClasses)
        guard classes >= 2 else { throw fail("/", "num_classes is \(classes), needs at least 2") }
        guard classes <= DatasetLayout.maxClasses else {
            throw fail("/", "num_classes is \(classes), more than cgt handles (\(DatasetLayout.maxClasses))")
        }
        featureShape = try root.intArrayAttribute(DatasetLayout.Attribute.featureShape)
        if let problem = DatasetLayout.featureShapeProblem(featureShape) { throw fail("/", problem) }
        if let refusal = MemoryBudget.refusal(featureShape, elementSize: MemoryLayout<Float>.size) {
            throw fail("/", "feature_shape \(featureShape): one sample \(refusal)")
        }
        namesClasses = root.hasAttribute(DatasetLayout.Attribute.classNames)
        if namesClasses {
            classNames = try root.stringArrayAttribute(DatasetLayout.Attribute.classNames)
            guard classNames.count == classes else {
                throw fail("/", "class_names has \(classNames.count) names for num_classes \(classes)")
            }
            if let problem = DatasetLayout.classNameProblem(classNames) { throw fail("/", "class_names: \(problem)") }
        } else {
            classNames = (0..<classes).map { "class \($0)" }
        }
        var sizes: [DatasetSplitName: Int] = [:]
        var storage: [DatasetSplitName: FeatureStorage] = [:]
        for split in DatasetSplitName.allCases where root.contains(split.rawValue) {
            (sizes[split], storage[split]) = try Self.checkStructure(
                file: file, split: split, featureShape: featureShape, version: version, path: path)
        }
        for required in [DatasetSplitName.train, .test] where sizes[required] == nil {
            throw fail("/\(required)", "missing split group (the file needs /train and /test)")
        }
        splitSizes = sizes
        self.storage = storage
        if let byteSplit = DatasetSplitName.allCases.first(where: { storage[$0] == .uint8 }) {
            byteNormalization = try Self.byteNormalization(
                root: root, channels: featureShape[0], object: "/\(byteSplit)/\(DatasetLayout.features)", path: path)
        } else {
            byteNormalization = nil
        }
    }

    /// Debian's packages of HDF5 filter plugins, by registered filter id.
    static let filterPackages: [Int: String] = [
        32000: "hdf5-plugin-lzf and liblzf1",
        307: "hdf5-filter-plugin", 32004: "hdf5-filter-plugin", 32008: "hdf5-filter-plugin",
        32001: "hdf5-filter-plugin-blosc-serial", 32013: "hdf5-filter-plugin-zfp-serial",
    ]

    /// What to do about data compressed with filters this HDF5 has no decoder for: the package
    /// that brings one, or a copy rewritten with deflate where the filter works.
    static func undecodable(_ filters: [HDF5Filter], file: String) -> String {
        let packages = Set(filters.compactMap { filterPackages[$0.id] }).sorted()
        let folders = HDF5Library.pluginFolders
        let install =
            packages.isEmpty
            ? "install a plugin for it into \(folders.first ?? "HDF5's plugin folder") (or set HDF5_PLUGIN_PATH; Python's hdf5plugin ships many)"
            : "install \(packages.joined(separator: " and ")) (Debian), which HDF5 finds in \(folders.first ?? "its plugin folder")"
        return
            "is compressed with \(filters.map(\.description).joined(separator: ", ")), which this HDF5 cannot decode: \(install), or, where the filter works, rewrite the file with deflate: h5repack -f GZIP=4 \(file) copy.h5"
    }

    /// The normalisation a file with uint8 features applies when reading: its
    /// `normalization_offset` and `normalization_scale`, one finite offset and one positive
    /// finite scale per channel; `object` is the uint8 dataset named when they are wrong.
    private static func byteNormalization(root: HDF5Group, channels: Int, object: String, path: String) throws
        -> Normalization
    {
        let names = [DatasetLayout.Attribute.normalizationOffset, DatasetLayout.Attribute.normalizationScale]
        var values: [[Double]] = []
        for name in names {
            guard root.hasAttribute(name) else {
                throw DatasetError(
                    file: path, object: object,
                    "is uint8 but the file has no attribute '\(name)': the normalisation to apply is unknown")
            }
            let array: [Double]
            do {
                array = try root.doubleArrayAttribute(name)
            } catch {
                throw DatasetError(file: path, object: object, "is uint8 but '\(name)' is not an array of numbers")
            }
            guard array.count == channels else {
                throw DatasetError(
                    file: path, object: object,
                    "is uint8 but '\(name)' has \(array.count) values for \(channels) channels (feature_shape[0])")
            }
            values.append(array)
        }
        guard values[0].allSatisfy(\.isFinite), values[1].allSatisfy({ $0.isFinite && $0 > 0 }) else {
            throw DatasetError(
                file: path, object: object,
                "is uint8 but its normalisation is unusable: offsets must be finite and scales finite and positive")
        }
        return Normalization(method: .fixed, offset: values[0], scale: values[1], statistics: "from the file")
    }

    /// Checks `/<split>/x` and `/<split>/y` and returns the number of samples and how `x` is stored.
    private static func checkStructure(
        file: HDF5File, split: DatasetSplitName, featureShape: [Int], version: Int, path: String
    ) throws -> (Int, FeatureStorage) {
        let xPath = "/\(split)/\(DatasetLayout.features)"
        let yPath = "/\(split)/\(DatasetLayout.labels)"
        for object in [xPath, yPath] where !file.root.contains(String(object.dropFirst())) {
            // The access lists never traverse a link to another file, so such a dataset looks missing.
            throw DatasetError(
                file: path, object: object, file.root.externalLinkProblem(on: object) ?? "missing dataset")
        }
        let x = try file.root.openDataset(String(xPath.dropFirst()))
        let y = try file.root.openDataset(String(yPath.dropFirst()))
        let storage: FeatureStorage
        switch (x.elementType, version) {
        case (.float32, _): storage = .float32
        case (.uint8, 2...): storage = .uint8
        case (.uint8, _):
            throw DatasetError(
                file: path, object: xPath,
                "dtype is uint8, expected float32 (layout_version \(version); uint8 features need version 2)")
        default:
            throw DatasetError(
                file: path, object: xPath,
                "dtype is \(x.elementType), expected float32\(version >= 2 ? " or uint8" : "")")
        }
        for (object, dataset) in [(xPath, x), (yPath, y)] where !dataset.unavailableFilters.isEmpty {
            throw DatasetError(
                file: path, object: object, Self.undecodable(dataset.unavailableFilters, file: path))
        }
        guard y.elementType == .int32 else {
            throw DatasetError(file: path, object: yPath, "dtype is \(y.elementType), expected int32")
        }
        guard y.shape.count == 1 else {
            throw DatasetError(file: path, object: yPath, "shape \(y.shape), expected one dimension [N]")
        }
        guard Array(x.shape.dropFirst()) == featureShape else {
            throw DatasetError(
                file: path, object: xPath, "shape \(x.shape) does not match [N] + feature_shape \(featureShape)")
        }
        guard x.shape.first == y.shape[0] else {
            throw DatasetError(
                file: path, object: xPath, "has \(x.shape.first ?? 0) samples but \(yPath) has \(y.shape[0])")
        }
        guard y.shape[0] > 0 else { throw DatasetError(file: path, object: yPath, "split is empty") }
        // Whole-split tables (labels, row slots) are sized by the declared sample count.
        if let refusal = MemoryBudget.refusal([y.shape[0]], elementSize: 16) {
            throw DatasetError(
                file: path, object: yPath, "declares \(y.shape[0]) samples: their per-sample tables \(refusal)")
        }
        return (y.shape[0], storage)
    }

    public var featureCount: Int { featureShape.reduce(1, *) }

    /// Rank `rank`'s contiguous share of a split shared by `ranks` processes (sizes differ by
    /// at most one; a share may be empty).
    public func shareRows(of split: DatasetSplitName, rank: Int, of ranks: Int) -> Range<Int> {
        let count = splitSizes[split] ?? 0
        return (rank * count / ranks)..<((rank + 1) * count / ranks)
    }

    /// Reads rank `rank`'s contiguous share of a split (`shareRows`).
    public func read(split: DatasetSplitName, rank: Int, of ranks: Int) throws -> DatasetSplit {
        try read(split: split, rows: shareRows(of: split, rank: rank, of: ranks))
    }

    /// Reads rows `rows` (default: all) of a split, checking labels and feature values.
    public func read(split: DatasetSplitName, rows: Range<Int>? = nil) throws -> DatasetSplit {
        guard let size = splitSizes[split] else {
            throw DatasetError(
                file: path, object: "/\(split)",
                "no such split in this file (has \(splitSizes.keys.map(\.rawValue).sorted().joined(separator: ", ")))")
        }
        let range = rows ?? 0..<size
        precondition(
            range.lowerBound >= 0 && range.upperBound <= size, "rows \(range) outside split \(split) of \(size)")
        try checkBudget(rows: range.count, split: split)
        let started = DispatchTime.now()
        let x = try file.root.openDataset("\(split)/\(DatasetLayout.features)")
        let y = try file.root.openDataset("\(split)/\(DatasetLayout.labels)")
        var features = [Float](repeating: 0, count: range.count * featureCount)
        var labels = [Int32](repeating: 0, count: range.count)
        try features.withUnsafeMutableBufferPointer { try x.read(rows: range, into: $0) }
        try labels.withUnsafeMutableBufferPointer { try y.read(rows: range, into: $0) }
        try count(x.readCost(rows: range), y.readCost(rows: range))
        decode(&features, split: split)
        try checkValues(split: split, features: features, labels: labels) { range.lowerBound + $0 }
        counters.seconds += Self.seconds(since: started)
        return DatasetSplit(
            name: split, features: features, labels: labels,
            sampleIDs: range.map { Int64($0) }, featureShape: featureShape)
    }

    /// Reads every split in blocks of about 64 MiB and checks every label and feature value:
    /// what training would find, found by `cgt inspect` without training (a corrupt chunk
    /// fails here as it would there).
    public func checkAllValues() throws {
        let block = max(1, (64 << 20) / max(1, featureCount * MemoryLayout<Float>.size))
        for split in DatasetSplitName.allCases {
            guard let size = splitSizes[split] else { continue }
            var start = 0
            while start < size {
                let end = min(size, start + block)
                _ = try read(split: split, rows: start..<end)
                start = end
            }
        }
    }

    /// Turns the stored values of `split` into the features training sees: uint8 values (which
    /// HDF5 has converted to float exactly) get the file's normalisation; float32 ones are as stored.
    func decode(_ features: inout [Float], split: DatasetSplitName) {
        guard storage[split] == .uint8, let byteNormalization else { return }
        byteNormalization.apply(to: &features, featureShape: featureShape)
    }

    /// Adds the stored and decompressed bytes of chunks read to `counters`.
    func count(_ costs: (stored: Int, decompressed: Int)...) {
        for cost in costs {
            counters.bytesRead += Int64(cost.stored)
            counters.bytesDecompressed += Int64(cost.decompressed)
        }
    }

    /// Seconds since `start`, the unit every read counter and stall is kept in.
    package static func seconds(since start: DispatchTime) -> Double {
        Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
    }

    /// Refuses a read of `rows` samples of `split` that would not fit `MemoryBudget`.
    func checkBudget(rows: Int, split: DatasetSplitName) throws {
        if let refusal = MemoryBudget.refusal([rows, featureCount], elementSize: MemoryLayout<Float>.size) {
            throw DatasetError(
                file: path, object: "/\(split)/\(DatasetLayout.features)", "reading \(rows) samples \(refusal)")
        }
    }

    /// Checks labels and feature values of rows read from `split`; `row(i)` is the file row of sample i.
    func checkValues(split: DatasetSplitName, features: [Float], labels: [Int32], row: (Int) -> Int) throws {
        let xPath = "/\(split)/\(DatasetLayout.features)"
        let yPath = "/\(split)/\(DatasetLayout.labels)"
        if let bad = labels.firstIndex(where: { $0 < 0 || Int($0) >= classes }) {
            throw DatasetError(
                file: path, object: yPath, "label \(labels[bad]) at row \(row(bad)) is outside [0, \(classes))")
        }
        if let bad = features.firstIndex(where: { !$0.isFinite }) {
            throw DatasetError(
                file: path, object: xPath,
                "non-finite value \(features[bad]) at row \(row(bad / featureCount)), feature \(bad % featureCount)")
        }
    }

    /// A string attribute of the file root, if present (provenance, normalisation).
    public func fileAttribute(_ name: String) -> String? {
        guard file.root.hasAttribute(name) else { return nil }
        return try? file.root.stringAttribute(name)
    }

    public func close() throws { try file.close() }
}
