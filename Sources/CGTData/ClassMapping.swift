/// How a source's labels become cgt's class ids `0..<C`, and the name of each class.
///
/// Integer labels (a ground-truth map, a `y.npy`) keep their order: the distinct ids sorted
/// ascending become 0, 1, ...; the original ids are kept so the file can say which class was
/// which. Text labels (a CSV column) are ordered numerically when every one is an integer, and
/// by their UTF-8 bytes otherwise; the text becomes the class name.
public struct ClassMapping: Equatable, Sendable {
    public let names: [String]
    /// The source's id of each class, for integer labels.
    public let originalIDs: [Int64]?

    public var count: Int { names.count }

    /// Maps integer labels; `names` (one per distinct id, in ascending id order) replaces the
    /// default names "class <id>".
    public static func fromIntegers(_ labels: [Int64], names: [String]?, namesFile: String = "") throws -> (
        mapping: ClassMapping, classes: [Int32]
    ) {
        let ids = Array(Set(labels)).sorted()
        if let names, names.count != ids.count {
            throw DatasetError(
                file: namesFile, object: "",
                "names \(names.count) classes but the labels hold \(ids.count) (ids \(Self.summary(ids)))")
        }
        let index = Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($0.element, Int32($0.offset)) })
        let mapping = ClassMapping(names: names ?? ids.map { "class \($0)" }, originalIDs: ids)
        return (mapping, labels.map { index[$0]! })
    }

    /// Maps text labels; their text becomes the class names.
    public static func fromText(_ labels: [String]) -> (mapping: ClassMapping, classes: [Int32]) {
        let distinct = Array(Set(labels))
        let numbers = distinct.compactMap { Int64($0) }
        let ordered =
            numbers.count == distinct.count
            ? distinct.sorted { Int64($0)! < Int64($1)! }
            : distinct.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        let index = Dictionary(uniqueKeysWithValues: ordered.enumerated().map { ($0.element, Int32($0.offset)) })
        return (ClassMapping(names: ordered, originalIDs: nil), labels.map { index[$0]! })
    }

    /// The class id of a source label of this mapping, or nil if the mapping has no such class.
    public func classID(ofOriginal id: Int64) -> Int32? {
        originalIDs?.firstIndex(of: id).map { Int32($0) }
    }

    public func classID(ofName name: String) -> Int32? {
        names.firstIndex(of: name).map { Int32($0) }
    }

    /// "1, 2, 3, ..., 16" for messages.
    static func summary(_ ids: [Int64]) -> String {
        ids.count <= 8
            ? ids.map(String.init).joined(separator: ", ")
            : "\(ids.prefix(3).map(String.init).joined(separator: ", ")), ..., \(ids.last!)"
    }
}

extension ClassMapping {
    /// Class names from a text file, one per line in class order; blank lines at the end are ignored.
    public static func readNames(_ path: String) throws -> (names: [String], source: SourceFile) {
        let source = try SourceFile.read(path)
        var lines = String(decoding: source.bytes, as: UTF8.self).split(
            separator: "\n", omittingEmptySubsequences: false
        )
        .map { $0.hasSuffix("\r") ? String($0.dropLast()).trimmed : String($0).trimmed }
        while lines.last?.isEmpty == true { lines.removeLast() }
        if let blank = lines.firstIndex(of: "") {
            throw DatasetError(file: path, object: "line \(blank + 1)", "is empty; each line names one class")
        }
        if let problem = DatasetLayout.classNameProblem(lines, unique: true) { throw DatasetError(file: path, object: "", problem) }
        return (lines, source)
    }
}
