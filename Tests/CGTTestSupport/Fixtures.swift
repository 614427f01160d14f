import CGTData
import CGTKernels
import CGTRandom
import Foundation

/// Seeded test data, so a failing test fails the same way every time.
public enum Fixtures {
    /// `count` normal values from `seed`.
    public static func normals(_ count: Int, seed: UInt64, scale: Float = 1) -> [Float] {
        var generator = SeededGenerator(seed: seed)
        return (0..<count).map { _ in generator.normal() * scale }
    }

    /// `count` uniform values in [low, high) from `seed`.
    public static func uniforms(_ count: Int, seed: UInt64, _ low: Float = -1, _ high: Float = 1) -> [Float] {
        var generator = SeededGenerator(seed: seed)
        return (0..<count).map { _ in generator.uniform(low, high) }
    }

    /// `count` labels in 0..<classes from `seed`.
    public static func labels(_ count: Int, classes: Int, seed: UInt64) -> [Int32] {
        var generator = SeededGenerator(seed: seed)
        return (0..<count).map { _ in Int32(generator.next() % UInt64(classes)) }
    }

    /// Writes a small synthetic dataset file and returns its path; `validation` samples more
    /// make a validation split.
    @discardableResult
    public static func writeDataset(
        in directory: TemporaryDirectory, name: String = "data.h5", features: Int = 12, classes: Int = 3,
        train: Int = 96, test: Int = 48, validation: Int = 0, seed: UInt64 = 0, spread: Float = 1
    ) throws -> String {
        let data = SyntheticDataset.make(
            features: features, classes: classes, trainCount: train, testCount: test + validation, seed: seed,
            spread: spread)
        func rows(_ name: DatasetSplitName, _ range: Range<Int>) -> DatasetSplit {
            DatasetSplit(
                name: name,
                features: Array(data.test.features[(range.lowerBound * features)..<(range.upperBound * features)]),
                labels: Array(data.test.labels[range]), sampleIDs: (0..<range.count).map { Int64($0) },
                featureShape: [features])
        }
        let splits =
            [data.train, rows(.test, 0..<test)]
            + (validation > 0 ? [rows(.validation, test..<(test + validation))] : [])
        let path = directory.file(name)
        try DatasetWriter.write(to: path, classNames: data.classNames, featureShape: [features], splits: splits)
        return path
    }
}

/// A folder that exists for the life of the object and is removed with it.
public final class TemporaryDirectory {
    public let path: String

    public init(_ label: String = "cgt-test") {
        path = NSTemporaryDirectory() + "\(label)-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    public func file(_ name: String) -> String { "\(path)/\(name)" }

    /// Writes `text` to a file of the folder and returns its path.
    @discardableResult
    public func write(_ text: String, to name: String) throws -> String {
        let target = file(name)
        try text.write(toFile: target, atomically: true, encoding: .utf8)
        return target
    }

    /// The names of the files in the folder, sorted.
    public func contents() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
    }
}

/// Runs a command-line tool (h5dump) and returns its exit status and standard output.
public func runTool(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}
