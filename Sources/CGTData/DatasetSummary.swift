import CGTHDF5
import Foundation

/// What `cgt inspect` reports about a dataset file: its layout, each split, and every file attribute.
public struct DatasetSummary {
    public struct Split {
        public let name: DatasetSplitName
        public let featureShape: [Int]
        public let featureType: String
        public let labelType: String
        /// Rows per chunk of `x`, or nil for contiguous storage.
        public let chunkRows: Int?
        /// Bytes of one chunk of `x` before compression.
        public let chunkBytes: Int?
        public let filters: [String]
        public let classCounts: [Int]
        public let hasSourceIndex: Bool
        public var count: Int { featureShape.first ?? 0 }
    }

    public let path: String
    public let fileSize: Int
    public let layoutVersion: Int
    public let classNames: [String]
    public let featureShape: [Int]
    /// In file order: train, validation, test.
    public let splits: [Split]
    /// Every root attribute besides the layout's own, rendered as text, sorted by name.
    public let attributes: [(name: String, value: String)]

    /// Opens `path`, checks it as `DatasetReader` does, and summarises it.
    public static func read(_ path: String) throws -> DatasetSummary {
        let reader = try DatasetReader(path: path)
        try reader.close()
        do {
            return try withOpenHDF5File(path) { file in
                let root = file.root
                var splits: [Split] = []
                for name in DatasetSplitName.allCases where root.contains(name.rawValue) {
                    let x = try root.openDataset("\(name)/\(DatasetLayout.features)")
                    let y = try root.openDataset("\(name)/\(DatasetLayout.labels)")
                    let labels = try y.readAll(as: Int32.self)
                    var counts = [Int](repeating: 0, count: reader.classes)
                    for label in labels where label >= 0 && Int(label) < counts.count { counts[Int(label)] += 1 }
                    splits.append(
                        Split(
                            name: name, featureShape: x.shape, featureType: "\(x.elementType)",
                            labelType: "\(y.elementType)",
                            chunkRows: x.chunkShape?.first,
                            chunkBytes: x.chunkShape.map { $0.reduce(1, *) * x.storedElementSize },
                            filters: x.filters, classCounts: counts,
                            hasSourceIndex: root.contains("\(name)/source_index")))
                }
                let layoutKeys = DatasetLayout.Attribute.layout
                var attributes: [(String, String)] = []
                for name in try root.attributeNames() where !layoutKeys.contains(name) {
                    attributes.append((name, render(root, name)))
                }
                var status = stat()
                let size = stat(path, &status) == 0 ? Int(status.st_size) : 0
                return DatasetSummary(
                    path: path, fileSize: size,
                    layoutVersion: try root.intAttribute(DatasetLayout.Attribute.layoutVersion),
                    classNames: reader.classNames, featureShape: reader.featureShape, splits: splits,
                    attributes: attributes)
            }
        } catch let error as HDF5Error {
            throw DatasetError(file: path, object: error.object, "\(error.operation) failed: \(error.message)")
        }
    }

    /// An attribute as text: strings as they are, numbers as Swift prints them, long lists shortened.
    static func render(_ holder: HDF5AttributeHolder, _ name: String) -> String {
        func list<T>(_ values: [T]) -> String {
            if values.count == 1 { return "\(values[0])" }
            let shown =
                values.count > 6
                ? values.prefix(4).map { "\($0)" } + ["...", "\(values.last!)"] : values.map { "\($0)" }
            return "[\(shown.joined(separator: ", "))]" + (values.count > 6 ? " (\(values.count) values)" : "")
        }
        if let strings = try? holder.stringArrayAttribute(name) {
            return strings.count == 1 ? strings[0] : list(strings.map { "'\($0)'" })
        }
        if let integers = try? holder.intArrayAttribute(name) { return list(integers) }
        if let reals = try? holder.doubleArrayAttribute(name) { return list(reals) }
        return "(a value cgt does not display)"
    }
}
