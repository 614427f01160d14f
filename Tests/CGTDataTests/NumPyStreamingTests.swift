import CGTHDF5
import CGTTestSupport
import Foundation
import XCTest

@testable import CGTData

/// `cgt prepare npy` reading a `.npy` X a block of rows at a time writes the file that reading
/// it whole writes: every dataset, attribute, chunk layout and filter, compared with `h5dump`
/// and, for the datasets, bit for bit through CGTHDF5.
final class NumPyStreamingTests: XCTestCase {
    let directory = TemporaryDirectory("npy-stream")
    let createdAt = Date(timeIntervalSince1970: 1_800_000_000)

    struct Case {
        var featureShape: [Int]
        var descr = "<f4"
        var storage = FeatureStorage.float32
        var normalization = Normalization.Method.zscore
        var stratified = true
        var validation = SplitFraction.zero
        var ownTest = false
        var ignored: [Int64] = [-1]
        var rows = 2_000
        var form = Form.npy
    }

    /// How X and y are stored.
    enum Form {
        case npy
        /// `.npy` files in Fortran (column-major) order.
        case fortran
        /// Members of one `.npz` archive, stored or deflated.
        case archive(deflated: Bool)
    }

    /// The `.npy` file of `values` (C order, `[rows] + featureShape`), in Fortran order when asked.
    func npyBytes(descr: String, shape: [Int], values: [Double], fortran: Bool) throws -> [UInt8] {
        var ordered = values
        if fortran {
            // Element with C index `c` goes to its Fortran index: first axis fastest.
            var strides = [Int](repeating: 1, count: shape.count)
            for axis in 1..<shape.count { strides[axis] = strides[axis - 1] * shape[axis - 1] }
            for c in values.indices {
                var rest = c
                var index = 0
                for axis in shape.indices.reversed() {
                    index += (rest % shape[axis]) * strides[axis]
                    rest /= shape[axis]
                }
                ordered[index] = values[c]
            }
        }
        let data: [UInt8]
        switch descr {
        case "<f4": data = RawFiles.bytes(ordered.map { Float($0) })
        case "<f8": data = RawFiles.bytes(ordered)
        case ">i2": data = RawFiles.bytes(ordered.map { Int16($0) }, bigEndian: true)
        case "|u1": data = ordered.map { UInt8($0) }
        case "<i8": data = RawFiles.bytes(ordered.map { Int64($0) })
        default: throw XCTSkip("no fixture writer for \(descr)")
        }
        return RawFiles.npy(descr: descr, shape: shape, fortranOrder: fortran, data: data)
    }

    /// Writes X and y in `form`; returns their names as `cgt prepare npy` takes them.
    func write(
        x: [Double], descr: String, shape: [Int], y: [Int64], form: Form, tag: String
    ) throws -> (x: String, y: String) {
        let fortran = if case .fortran = form { true } else { false }
        let xFile = try npyBytes(descr: descr, shape: shape, values: x, fortran: fortran)
        let yFile = try npyBytes(descr: "<i8", shape: [y.count], values: y.map { Double($0) }, fortran: fortran)
        switch form {
        case .npy, .fortran:
            let (xPath, yPath) = (directory.file("\(tag)-x.npy"), directory.file("\(tag)-y.npy"))
            try RawFiles.write(xFile, to: xPath)
            try RawFiles.write(yFile, to: yPath)
            return (xPath, yPath)
        case .archive(let deflated):
            let path = directory.file("\(tag).npz")
            try RawFiles.write(
                RawFiles.zip([
                    ("X.npy", xFile, deflated ? Deflate.compress(xFile, gzip: false) : nil),
                    ("y.npy", yFile, deflated ? Deflate.compress(yFile, gzip: false) : nil),
                ]), to: path)
            return ("\(path):X", "\(path):y")
        }
    }

    /// Source values: integers in 0...255 for uint8 storage, else spread reals (exact in `descr`).
    func features(_ test: Case, rows: Int, salt: Int) -> [Double] {
        let width = test.featureShape.reduce(1, *)
        return (0..<(rows * width)).map { i in
            let mixed = (i &* 2_654_435_761 &+ salt &* 97) % 1_000_003
            if test.storage == .uint8 { return Double(mixed % 256) }
            let channel = (i % width) / max(1, width / test.featureShape[0])
            return Double(mixed % 20_000) / 64 - 150 + Double(channel * 40)
        }
    }

    func npy(_ name: String, descr: String, shape: [Int], values: [Double]) throws -> String {
        let path = directory.file(name)
        try RawFiles.write(npyBytes(descr: descr, shape: shape, values: values, fortran: false), to: path)
        return path
    }

    /// Labels 0...4 (class 4 rare) and `ignored` ones sprinkled in.
    func labels(rows: Int, ignored: [Int64], salt: Int) -> [Int64] {
        (0..<rows).map { i in
            let mixed = (i &* 40_503 &+ salt) % 1_009
            if let drop = ignored.first, mixed % 11 == 0 { return drop }
            return mixed % 97 == 0 ? 4 : Int64(mixed % 4)
        }
    }

    /// Prepares `test` in memory and streamed in blocks of `blockBytes`; returns both files.
    func prepareBothWays(_ test: Case, blockBytes: Int, tag: String) throws -> (memory: String, streamed: String) {
        let shape = [test.rows] + test.featureShape
        let (x, y) = try write(
            x: features(test, rows: test.rows, salt: 1), descr: test.descr, shape: shape,
            y: labels(rows: test.rows, ignored: test.ignored, salt: 3), form: test.form, tag: tag)
        var testX: String?
        var testY: String?
        if test.ownTest {
            let rows = test.rows / 3
            (testX, testY) = try write(
                x: features(test, rows: rows, salt: 5), descr: test.descr, shape: [rows] + test.featureShape,
                y: labels(rows: rows, ignored: test.ignored, salt: 7).map { $0 == 4 ? 0 : $0 }, form: test.form,
                tag: "\(tag)-test")
        }
        let plan = SplitPlan(
            testFraction: test.ownTest ? .zero : SplitFraction(0.25)!, validationFraction: test.validation,
            stratified: test.stratified, seed: 11)
        let memory = directory.file("\(tag)-memory.h5")
        let streamed = directory.file("\(tag)-streamed.h5")
        let prepared = try NumPyPreparation.prepare(
            x: x, y: y, testX: testX, testY: testY, ignoring: test.ignored, classNamesFile: nil,
            normalization: .fit(test.normalization), plan: plan, commandLine: "cgt prepare npy", toolVersion: "test",
            storage: test.storage, createdAt: createdAt)
        try DatasetWriter.write(prepared, to: memory)
        let content = try NumPyPreparation.content(
            x: x, y: y, testX: testX, testY: testY, ignoring: test.ignored, classNamesFile: nil,
            normalization: .fit(test.normalization), plan: plan, commandLine: "cgt prepare npy", toolVersion: "test",
            storage: test.storage, createdAt: createdAt, blockBytes: blockBytes)
        XCTAssertEqual(content.writeBlockBytes, blockBytes, "\(tag): X was streamed, not read whole")
        try DatasetWriter.write(content, to: streamed)
        return (memory, streamed)
    }

    func testStreamedFilesEqualTheFilesPreparedInMemory() throws {
        let cases: [(String, Case)] = [
            ("chw-zscore", Case(featureShape: [3, 4, 5], validation: SplitFraction(0.2)!)),
            ("chw-minmax-random", Case(featureShape: [3, 4, 5], normalization: .minmax, stratified: false)),
            ("flat-f8-zscore", Case(featureShape: [37], descr: "<f8", validation: SplitFraction(0.1)!)),
            ("hw-i2-minmax", Case(featureShape: [6, 7], descr: ">i2", normalization: .minmax, ignored: [])),
            (
                "chw-u1-uint8-zscore",
                Case(featureShape: [2, 3, 3], descr: "|u1", storage: .uint8, validation: SplitFraction(0.2)!)
            ),
            (
                "chw-f4-uint8-minmax",
                Case(featureShape: [3, 2, 2], storage: .uint8, normalization: .minmax, stratified: false)
            ),
            ("own-test-zscore", Case(featureShape: [4, 5], validation: SplitFraction(0.2)!, ownTest: true)),
            ("none", Case(featureShape: [9], normalization: .none, rows: 1_000)),
            (
                "fortran-flat-f8",
                Case(featureShape: [37], descr: "<f8", validation: SplitFraction(0.1)!, form: .fortran)
            ),
            ("fortran-chw-zscore", Case(featureShape: [3, 4, 5], validation: SplitFraction(0.2)!, form: .fortran)),
            (
                "fortran-hw-i2-minmax",
                Case(featureShape: [6, 7], descr: ">i2", normalization: .minmax, ignored: [], form: .fortran)
            ),
            (
                "fortran-u1-uint8",
                Case(featureShape: [2, 3, 3], descr: "|u1", storage: .uint8, ownTest: true, form: .fortran)
            ),
            ("stored-chw", Case(featureShape: [3, 4, 5], stratified: false, form: .archive(deflated: false))),
            (
                "stored-own-test",
                Case(
                    featureShape: [4, 5], validation: SplitFraction(0.2)!, ownTest: true,
                    form: .archive(deflated: false))
            ),
            ("deflated-flat-f8", Case(featureShape: [37], descr: "<f8", form: .archive(deflated: true))),
            (
                "deflated-u1-uint8",
                Case(
                    featureShape: [2, 3, 3], descr: "|u1", storage: .uint8, validation: SplitFraction(0.2)!,
                    form: .archive(deflated: true))
            ),
        ]
        for (tag, test) in cases {
            let width = test.featureShape.reduce(1, *)
            // Blocks of a few rows and a ragged remainder, so that reads, fits and writes cross
            // block boundaries everywhere.
            let files = try prepareBothWays(test, blockBytes: 3 * width * 4 + 5, tag: tag)
            try assertSameDatasetFile(files.memory, files.streamed, tag)
        }
    }

    func testStreamingRefusesWhatReadingWholeRefuses() throws {
        func bothErrors(
            _ test: Case, poison: (inout [Double]) -> Void, tag: String, normalization: NormalizationRequest? = nil
        ) throws -> (String, String) {
            let normalization = normalization ?? .fit(test.normalization)
            var values = features(test, rows: test.rows, salt: 1)
            poison(&values)
            let x = try npy("\(tag)-x.npy", descr: test.descr, shape: [test.rows] + test.featureShape, values: values)
            let y = directory.file("\(tag)-y.npy")
            try RawFiles.write(
                RawFiles.npy(
                    descr: "<i8", shape: [test.rows],
                    data: RawFiles.bytes(labels(rows: test.rows, ignored: test.ignored, salt: 3))), to: y)
            let plan = SplitPlan(testFraction: SplitFraction(0.25)!, seed: 11)
            var errors: [String] = []
            for streamed in [false, true] {
                do {
                    if streamed {
                        // The features are converted (and checked) as the file is written.
                        let content = try NumPyPreparation.content(
                            x: x, y: y, testX: nil, testY: nil, ignoring: test.ignored, classNamesFile: nil,
                            normalization: normalization, plan: plan, commandLine: "", toolVersion: "",
                            storage: test.storage, createdAt: createdAt, blockBytes: 64)
                        let output = directory.file("\(tag).h5")
                        defer { XCTAssertFalse(FileManager.default.fileExists(atPath: output), "\(tag): no file") }
                        try DatasetWriter.write(content, to: output)
                    } else {
                        _ = try NumPyPreparation.prepare(
                            x: x, y: y, testX: nil, testY: nil, ignoring: test.ignored, classNamesFile: nil,
                            normalization: normalization, plan: plan, commandLine: "", toolVersion: "",
                            storage: test.storage, createdAt: createdAt)
                    }
                    XCTFail("\(tag): \(streamed ? "streamed" : "in memory") was not refused")
                } catch {
                    errors.append(String(describing: error))
                }
            }
            return (errors[0], errors[1])
        }
        let nan = try bothErrors(Case(featureShape: [4, 3]), poison: { $0[1_234 * 12 + 5] = .nan }, tag: "nan")
        XCTAssertEqual(nan.0, nan.1)
        XCTAssertTrue(nan.0.contains("sample 1234, feature 5 is nan, not a finite float32"), nan.0)
        let overflow = try bothErrors(
            Case(featureShape: [4, 3], descr: "<f8"), poison: { $0[777 * 12] = 1e300 }, tag: "overflow")
        XCTAssertEqual(overflow.0, overflow.1)
        XCTAssertTrue(overflow.0.contains("sample 777, feature 0 is inf"), overflow.0)
        let fraction = try bothErrors(
            Case(featureShape: [2, 2], storage: .uint8), poison: { $0[1_500 * 4 + 3] = 2.5 }, tag: "fraction")
        XCTAssertEqual(fraction.0, fraction.1)
        XCTAssertTrue(fraction.0.contains("source index 1500, feature 3 is 2.5, not an integer in 0...255"), fraction.0)
        // Given constants that overflow float32: found as the streamed features are written.
        let overflowing = Normalization(method: .zscore, offset: [0, 0], scale: [1e-300, 1], statistics: "given")
        let scaled = try bothErrors(
            Case(featureShape: [2, 2]), poison: { _ in }, tag: "scaled", normalization: .fixed(overflowing))
        XCTAssertEqual(scaled.0, scaled.1)
        XCTAssertTrue(scaled.0.contains("is not finite after normalisation"), scaled.0)
    }

    /// A source written to while it is streamed is refused in one line naming it, and no file is left.
    func testASourceThatChangesWhileItIsReadIsRefused() throws {
        let test = Case(featureShape: [4, 3], rows: 600)
        let plan = SplitPlan(testFraction: SplitFraction(0.25)!, seed: 11)
        func refusal(form: Form, tag: String, change: (_ file: String) throws -> Void) throws -> String {
            let (x, y) = try write(
                x: features(test, rows: test.rows, salt: 1), descr: test.descr, shape: [test.rows] + test.featureShape,
                y: labels(rows: test.rows, ignored: test.ignored, salt: 3), form: form, tag: tag)
            let content = try NumPyPreparation.content(
                x: x, y: y, testX: nil, testY: nil, ignoring: test.ignored, classNamesFile: nil,
                normalization: .fit(.zscore), plan: plan, commandLine: "", toolVersion: "", storage: .float32,
                createdAt: createdAt, blockBytes: 64)
            try change(NumPyInput.parse(x).path)
            let output = directory.file("\(tag).h5")
            do {
                try DatasetWriter.write(content, to: output)
                XCTFail("\(tag): a changed source was not refused")
            } catch {
                XCTAssertFalse(FileManager.default.fileExists(atPath: output), "\(tag): no file is left")
                return String(describing: error)
            }
            return ""
        }
        func modify(_ file: String) throws {
            let handle = try XCTUnwrap(FileHandle(forUpdatingAtPath: file))
            try handle.seek(toOffset: 200)
            try handle.write(contentsOf: Data([0x42, 0x42]))
            try handle.close()
            // The clock may not tick between reading and writing; the time a writer sets is enough.
            try FileManager.default.setAttributes(
                [.modificationDate: Date(timeIntervalSinceNow: 5)], ofItemAtPath: file)
        }
        let shrunk = try refusal(form: .npy, tag: "shrunk") { file in
            let handle = try XCTUnwrap(FileHandle(forUpdatingAtPath: file))
            try handle.truncate(atOffset: 1_000)
            try handle.close()
        }
        XCTAssertTrue(shrunk.contains("shrunk-x.npy") && shrunk.contains("shrank"), shrunk)
        let modified = try refusal(form: .npy, tag: "modified", change: modify)
        XCTAssertTrue(
            modified.contains("modified-x.npy") && modified.contains("was modified while cgt prepare read it"),
            modified)
        // A deflated member is read from its unpacked copy; the archive is still watched.
        let archive = try refusal(form: .archive(deflated: true), tag: "archive", change: modify)
        XCTAssertTrue(
            archive.contains("archive.npz") && archive.contains("was modified while cgt prepare read it"), archive)
    }
}
