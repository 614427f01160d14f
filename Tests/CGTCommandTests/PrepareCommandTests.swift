import CGTData
import CGTHDF5
import CGTTestSupport
import Foundation
import XCTest

/// `cgt prepare` and `cgt inspect` as a user meets them: a file on success, and on bad input one
/// line naming the file, a non-zero exit, and no output (nor temporary) file left behind.
final class PrepareCommandTests: XCTestCase {
    let directory = TemporaryDirectory("prepare")
    var out: String { directory.file("out.h5") }

    func write(_ name: String, _ bytes: [UInt8]) throws -> String {
        let path = directory.file(name)
        try RawFiles.write(bytes, to: path)
        return path
    }

    /// A 4 x 5 scene of 3 bands, labels 0 (unlabelled), 1 and 2.
    func writeScene(labels: [UInt8]? = nil, height: Int = 4, width: Int = 5) throws -> (cube: String, labels: String) {
        let cube = (0..<(height * width * 3)).map { UInt16($0 * 3 % 101) }
        let map = labels ?? (0..<(height * width)).map { UInt8($0 % 3) }
        return (
            try write("cube.npy", RawFiles.npy(descr: "<u2", shape: [height, width, 3], data: RawFiles.bytes(cube))),
            try write("gt.npy", RawFiles.npy(descr: "|u1", shape: [4, 5], data: map))
        )
    }

    func hsi(_ scene: (cube: String, labels: String), _ extra: [String] = []) throws -> CommandResult {
        try CommandRunner.cgt(
            [
                "prepare", "hsi", "--cube", scene.cube, "--labels", scene.labels, "--ignore-label", "0",
                "--test-fraction", "0.3", "--out", out,
            ] + extra)
    }

    /// Fashion-MNIST-style files: `count` 2x2 images per split, gzip (stored blocks) or plain.
    func writeFashion(count: Int = 20, compress: Bool = true) throws {
        for prefix in ["train", "t10k"] {
            let images = RawFiles.idx(
                typeCode: 0x08, shape: [count, 2, 2], data: (0..<(count * 4)).map { UInt8($0 % 256) })
            let labels = RawFiles.idx(typeCode: 0x08, shape: [count], data: (0..<count).map { UInt8($0 % 10) })
            _ = try write(
                "\(prefix)-images-idx3-ubyte\(compress ? ".gz" : "")", compress ? RawFiles.gzipStored(images) : images)
            _ = try write(
                "\(prefix)-labels-idx1-ubyte\(compress ? ".gz" : "")", compress ? RawFiles.gzipStored(labels) : labels)
        }
    }

    func assertRefused(
        _ result: CommandResult, naming file: String, mentions words: [String] = [],
        file testFile: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertNotEqual(result.status, 0, "exit status", file: testFile, line: line)
        let lines = result.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, "one line: \(result.stderr)", file: testFile, line: line)
        XCTAssertTrue(result.stderr.hasPrefix("cgt: error: "), result.stderr, file: testFile, line: line)
        for word in [file] + words {
            XCTAssertTrue(
                result.stderr.contains(word), "'\(result.stderr)' should mention '\(word)'", file: testFile, line: line)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "no output file", file: testFile, line: line)
        XCTAssertFalse(
            directory.contents().contains { $0.contains(".tmp") }, "no temporary file: \(directory.contents())",
            file: testFile, line: line)
    }

    // MARK: - Success

    func testHyperspectralSceneAndInspect() throws {
        let result = try hsi(try writeScene(), ["--validation-fraction", "0.2", "--seed", "3"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("wrote \(out)"), result.stdout)
        let reader = try DatasetReader(path: out)
        XCTAssertEqual(reader.classNames, ["class 1", "class 2"])
        XCTAssertEqual(reader.splitSizes.values.reduce(0, +), 13, "the 13 pixels labelled 1 or 2")
        XCTAssertNotNil(reader.splitSizes[.validation])
        XCTAssertTrue(reader.fileAttribute("command_line")?.contains("--validation-fraction 0.2") ?? false)
        try reader.close()

        let inspected = try CommandRunner.cgt(["inspect", out])
        XCTAssertEqual(inspected.status, 0, inspected.stderr)
        for text in [
            "2 classes, feature shape [3]", "train", "validation", "test", "class 1", "normalization: minmax",
            "split_method: stratified", "source_kind: hsi", "source_sha256", "label_ids: [1, 2]",
        ] {
            XCTAssertTrue(inspected.stdout.contains(text), "inspect shows '\(text)':\n\(inspected.stdout)")
        }
        let dump = try CommandRunner.run("/usr/bin/h5dump", ["-H", out])
        XCTAssertEqual(dump.status, 0, dump.stderr)
        XCTAssertTrue(dump.stdout.contains("DATASET \"x\""), dump.stdout)
    }

    func testFashionMNISTFromADirectory() throws {
        try writeFashion()
        let result = try CommandRunner.cgt(["prepare", "fashion-mnist", "--dir", directory.path, "--out", out])
        XCTAssertEqual(result.status, 0, result.stderr)
        let reader = try DatasetReader(path: out)
        XCTAssertEqual(reader.featureShape, [1, 2, 2])
        XCTAssertEqual(reader.splitSizes, [.train: 20, .test: 20])
        XCTAssertEqual(reader.classNames.first, "T-shirt/top")
        XCTAssertEqual(reader.fileAttribute("normalization"), "fixed")
        try reader.close()
    }

    func testStorageAndCompressionOptions() throws {
        try writeFashion()
        let bytes = directory.file("bytes.h5")
        let floats = directory.file("floats.h5")
        let plain = try CommandRunner.cgt([
            "prepare", "fashion-mnist", "--dir", directory.path, "--out", bytes, "--compression", "none",
        ])
        XCTAssertEqual(plain.status, 0, plain.stderr)
        XCTAssertTrue(plain.stdout.contains("uint8 features, compression none"), plain.stdout)
        let float = try CommandRunner.cgt([
            "prepare", "fashion-mnist", "--dir", directory.path, "--out", floats, "--storage", "float32",
        ])
        XCTAssertEqual(float.status, 0, float.stderr)
        try withOpenHDF5File(bytes) { file in
            let x = try file.root.openDataset("train/x")
            XCTAssertEqual(x.elementType, .uint8, "fashion-mnist's default")
            XCTAssertEqual(x.filters, [])
            XCTAssertEqual(try file.root.intAttribute("layout_version"), 2)
        }
        let byteReader = try DatasetReader(path: bytes)
        let floatReader = try DatasetReader(path: floats)
        XCTAssertEqual(
            try byteReader.read(split: .train).features.map(\.bitPattern),
            try floatReader.read(split: .train).features.map(\.bitPattern))
        let inspected = try CommandRunner.cgt(["inspect", bytes])
        XCTAssertEqual(inspected.status, 0, inspected.stderr)
        for text in ["layout version 2", "uint8 [20, 1, 2, 2]", "uncompressed", "features stored as uint8"] {
            XCTAssertTrue(inspected.stdout.contains(text), "inspect shows '\(text)':\n\(inspected.stdout)")
        }
        let help = try CommandRunner.cgt(["prepare", "npy", "--help"])
        XCTAssertTrue(help.stdout.contains("--storage <float32|uint8>"), help.stdout)
        XCTAssertTrue(help.stdout.contains("uint8 for fashion-mnist"), help.stdout)
        let wrong = try CommandRunner.cgt([
            "prepare", "fashion-mnist", "--dir", directory.path, "--out", out, "--storage", "int16",
        ])
        XCTAssertNotEqual(wrong.status, 0)
        XCTAssertTrue(wrong.stderr.contains("float32") && wrong.stderr.contains("uint8"), wrong.stderr)
    }

    func testNumPyArchiveAndCSV() throws {
        let x = RawFiles.npy(descr: "<f4", shape: [10, 2], data: RawFiles.bytes((0..<20).map { Float($0) }))
        let y = RawFiles.npy(descr: "<i8", shape: [10], data: RawFiles.bytes((0..<10).map { Int64($0 % 2) }))
        let archive = try write("data.npz", RawFiles.zip([("X.npy", x, nil), ("y.npy", y, nil)]))
        let npy = try CommandRunner.cgt([
            "prepare", "npy", "--x", "\(archive):X", "--y", "\(archive):y", "--normalize", "zscore", "--out", out,
        ])
        XCTAssertEqual(npy.status, 0, npy.stderr)
        XCTAssertEqual(try DatasetReader(path: out).splitSizes, [.train: 7, .test: 3])

        let csv = directory.file("iris.csv")
        try "id,length,width,species\n1,5.1,3.5,setosa\n2,7.0,3.2,versicolor\n3,4.9,3.0,setosa\n4,6.4,3.2,versicolor\n"
            .write(toFile: csv, atomically: true, encoding: .utf8)
        let table = try CommandRunner.cgt([
            "prepare", "csv", "--file", csv, "--label-column", "species", "--drop-column", "id",
            "--test-fraction", "0.5", "--out", out, "--force",
        ])
        XCTAssertEqual(table.status, 0, table.stderr)
        let reader = try DatasetReader(path: out)
        XCTAssertEqual(reader.classNames, ["setosa", "versicolor"])
        XCTAssertEqual(reader.splitSizes, [.train: 2, .test: 2])
    }

    // MARK: - Bad input

    func testExistingOutputIsRefusedUnlessForced() throws {
        let scene = try writeScene()
        try Data("precious".utf8).write(to: URL(fileURLWithPath: out))
        let refused = try hsi(scene)
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("\(out): already exists; pass --force"), refused.stderr)
        XCTAssertEqual(try String(contentsOfFile: out, encoding: .utf8), "precious", "left untouched")
        XCTAssertEqual(try hsi(scene, ["--force"]).status, 0)
        XCTAssertNoThrow(try DatasetReader(path: out))
    }

    func testTruncatedGzip() throws {
        try writeFashion()
        let images = directory.file("train-images-idx3-ubyte.gz")
        let bytes = try XCTUnwrap(FileManager.default.contents(atPath: images))
        try bytes.prefix(bytes.count - 30).write(to: URL(fileURLWithPath: images))
        assertRefused(
            try CommandRunner.cgt(["prepare", "fashion-mnist", "--dir", directory.path, "--out", out]),
            naming: images, mentions: ["truncated"])
    }

    func testCorruptGzip() throws {
        try writeFashion()
        let labels = directory.file("t10k-labels-idx1-ubyte.gz")
        var bytes = try XCTUnwrap(FileManager.default.contents(atPath: labels))
        bytes[bytes.count - 8] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: labels))
        assertRefused(
            try CommandRunner.cgt(["prepare", "fashion-mnist", "--dir", directory.path, "--out", out]),
            naming: labels, mentions: ["not valid gzip data"])
    }

    func testIDXMagicAndDimensionMismatch() throws {
        try writeFashion(compress: false)
        let images = directory.file("t10k-images-idx3-ubyte")
        try RawFiles.write([0, 0, 0x08, 0x07, 0, 0, 0, 1], to: images)
        assertRefused(
            try CommandRunner.cgt(["prepare", "fashion-mnist", "--dir", directory.path, "--out", out]),
            naming: images, mentions: ["truncated"])
        try RawFiles.write([1, 2, 3, 4, 5, 6, 7, 8], to: images)
        assertRefused(
            try CommandRunner.cgt(["prepare", "fashion-mnist", "--dir", directory.path, "--out", out]),
            naming: images, mentions: ["not an IDX file"])
        try writeFashion(compress: false)
        let labels = directory.file("train-labels-idx1-ubyte")
        try RawFiles.write(
            RawFiles.idx(typeCode: 0x08, shape: [19], data: [UInt8](repeating: 0, count: 19)), to: labels)
        assertRefused(
            try CommandRunner.cgt(["prepare", "fashion-mnist", "--dir", directory.path, "--out", out]),
            naming: labels, mentions: ["19 labels", "20 images"])
    }

    func testNpyWithABadHeaderOrTooFewBytes() throws {
        let scene = try writeScene()
        let bad = try write("bad.npy", RawFiles.npy(header: "{'descr': '<u2', 'shape': (4, 5, 3), }", data: []))
        assertRefused(try hsi((bad, scene.labels)), naming: bad, mentions: ["bad .npy header", "fortran_order"])
        let short = try write(
            "short.npy", RawFiles.npy(descr: "<u2", shape: [4, 5, 3], data: [UInt8](repeating: 0, count: 100)))
        assertRefused(try hsi((short, scene.labels)), naming: short, mentions: ["needs 120 bytes", "only has 100"])
        let huge = try write("huge.npy", RawFiles.npy(descr: "<f8", shape: [1 << 20, 1 << 20, 200], data: [1, 2, 3]))
        assertRefused(try hsi((huge, scene.labels)), naming: huge, mentions: ["only has 3"])
    }

    func testCubeAndLabelMapThatDisagree() throws {
        let scene = try writeScene(height: 5, width: 4)
        assertRefused(try hsi(scene), naming: scene.labels, mentions: ["label map is 4 x 5 pixels", "5 x 4"])
    }

    func testLabelsThatDoNotFit() throws {
        let scene = try writeScene()
        let fractional = try write(
            "frac.npy",
            RawFiles.npy(descr: "<f8", shape: [4, 5], data: RawFiles.bytes([Double](repeating: 1.5, count: 20))))
        assertRefused(try hsi((scene.cube, fractional)), naming: fractional, mentions: ["not an integer label"])
        let x = try write(
            "x.npy", RawFiles.npy(descr: "<f4", shape: [4, 2], data: RawFiles.bytes([Float](repeating: 1, count: 8))))
        let y = try write(
            "y.npy", RawFiles.npy(descr: "<i4", shape: [5], data: RawFiles.bytes([Int32](repeating: 1, count: 5))))
        assertRefused(
            try CommandRunner.cgt(["prepare", "npy", "--x", x, "--y", y, "--out", out]), naming: y,
            mentions: ["5 labels", "4 samples"])
        let names = directory.file("names.txt")
        try "only one\n".write(toFile: names, atomically: true, encoding: .utf8)
        assertRefused(
            try hsi(scene, ["--class-names", names]), naming: names, mentions: ["names 1 classes but the labels hold 2"]
        )
    }

    /// A `.npy` X six times `CGT_MEMORY_LIMIT` is read a block of rows at a time, not refused.
    func testANumPyFileLargerThanTheMemoryLimitIsStreamed() throws {
        let (rows, width) = (24_576, 256)
        let values = (0..<(rows * width)).map { Float(($0 &* 7_919) % 1_000) / 7 }
        let x = directory.file("large-x.npy")
        let header = RawFiles.npy(descr: "<f4", shape: [rows, width], data: [])
        var data = Data(header)
        values.withUnsafeBytes { data.append(contentsOf: $0) }
        try data.write(to: URL(fileURLWithPath: x))
        let y = try write(
            "large-y.npy", RawFiles.npy(descr: "|u1", shape: [rows], data: (0..<rows).map { UInt8($0 % 3) }))
        let limit = ["CGT_MEMORY_LIMIT": "4M"]
        let result = try CommandRunner.cgt(
            [
                "prepare", "npy", "--x", x, "--y", y, "--test-fraction", "0.1", "--validation-fraction", "0.1",
                "--normalize", "zscore", "--out", out,
            ], environment: limit)
        XCTAssertEqual(result.status, 0, result.stderr)
        let sizes = try DatasetReader(path: out).splitSizes
        XCTAssertEqual(sizes.values.reduce(0, +), rows, "\(sizes)")
    }

    /// Every other form `cgt prepare` reads, several times `CGT_MEMORY_LIMIT` (reading any of
    /// them whole needs about five times the file), is streamed, not refused: a Fortran-order
    /// `.npy`, a deflated `.npz` member, a Fortran-order cube, gzip IDX files and a CSV file.
    func testEveryFormatLargerThanTheMemoryLimitIsStreamed() throws {
        let limit = ["CGT_MEMORY_LIMIT": "4M"]
        let (rows, width) = (8_192, 256)
        let values = (0..<(rows * width)).map { Float(($0 &* 7_919) % 1_000) / 7 }
        let xFile = RawFiles.npy(
            descr: "<f4", shape: [rows, width], fortranOrder: true, data: values.withUnsafeBytes { Array($0) })
        let yFile = RawFiles.npy(descr: "|u1", shape: [rows], data: (0..<rows).map { UInt8($0 % 3) })
        let fortran = try write("fortran-x.npy", xFile)
        let y = try write("labels.npy", yFile)
        let archive = try write(
            "data.npz",
            RawFiles.zip([("X.npy", xFile, RawFiles.deflateStored(xFile)), ("y.npy", yFile, nil)]))
        let cube: [UInt16] = (0..<(128 * 64 * 200)).map { (index: Int) -> UInt16 in UInt16((index &* 31) % 4_000) }
        let scene = (
            try write(
                "big-cube.npy",
                RawFiles.npy(descr: "<u2", shape: [128, 64, 200], fortranOrder: true, data: RawFiles.bytes(cube))),
            try write(
                "big-gt.npy",
                RawFiles.npy(
                    descr: "|u1", shape: [128, 64], fortranOrder: true, data: (0..<(128 * 64)).map { UInt8($0 % 3) }))
        )
        for prefix in ["train", "t10k"] {
            let count = prefix == "train" ? 12_000 : 2_000
            let images = RawFiles.idx(
                typeCode: 0x08, shape: [count, 28, 28],
                data: (0..<(count * 784)).map { UInt8(truncatingIfNeeded: $0 &* 13) })
            let labels = RawFiles.idx(typeCode: 0x08, shape: [count], data: (0..<count).map { UInt8($0 % 10) })
            _ = try write("\(prefix)-images-idx3-ubyte.gz", RawFiles.gzipStored(images))
            _ = try write("\(prefix)-labels-idx1-ubyte.gz", RawFiles.gzipStored(labels))
        }
        var csv = "label," + (0..<64).map { "f\($0)" }.joined(separator: ",") + "\n"
        for row in 0..<20_000 {
            csv += "c\(row % 4)," + (0..<64).map { String(($0 &* 31 &+ row) % 977) }.joined(separator: ",") + "\n"
        }
        let table = directory.file("big.csv")
        try csv.write(toFile: table, atomically: true, encoding: .utf8)
        let split = ["--test-fraction", "0.2", "--normalize", "zscore", "--force", "--out", out]
        let cases: [(String, [String], Int)] = [
            ("fortran npy", ["npy", "--x", fortran, "--y", y] + split, rows),
            ("deflated npz", ["npy", "--x", "\(archive):X", "--y", "\(archive):y"] + split, rows),
            ("fortran cube", ["hsi", "--cube", scene.0, "--labels", scene.1, "--ignore-label", "0"] + split, 5_461),
            ("gzip idx", ["fashion-mnist", "--dir", directory.file(""), "--force", "--out", out], 14_000),
            ("csv", ["csv", "--file", table, "--label-column", "label"] + split, 20_000),
        ]
        for (tag, arguments, samples) in cases {
            let result = try CommandRunner.cgt(["prepare"] + arguments, environment: limit)
            XCTAssertEqual(result.status, 0, "\(tag): \(result.stderr)")
            let sizes = try DatasetReader(path: out).splitSizes
            XCTAssertEqual(sizes.values.reduce(0, +), samples, "\(tag): \(sizes)")
        }
    }

    func testNaNAndInfinity() throws {
        let scene = try writeScene()
        var values = [Float](repeating: 2, count: 60)
        values[3 * 1 + 1] = .nan
        let cube = try write("nan.npy", RawFiles.npy(descr: "<f4", shape: [4, 5, 3], data: RawFiles.bytes(values)))
        assertRefused(try hsi((cube, scene.labels)), naming: cube, mentions: ["pixel (row 0, column 1), band 1 is nan"])
        let x = try write(
            "inf.npy", RawFiles.npy(descr: "<f8", shape: [4, 1], data: RawFiles.bytes([1.0, .infinity, 2, 3])))
        let y = try write("y.npy", RawFiles.npy(descr: "<i4", shape: [4], data: RawFiles.bytes([Int32(0), 1, 0, 1])))
        assertRefused(
            try CommandRunner.cgt(["prepare", "npy", "--x", x, "--y", y, "--out", out]), naming: x,
            mentions: ["sample 1, feature 0 is inf"])
        let csv = directory.file("nan.csv")
        try "a,class\n1,x\nNaN,y\n".write(toFile: csv, atomically: true, encoding: .utf8)
        assertRefused(
            try CommandRunner.cgt(["prepare", "csv", "--file", csv, "--label-column", "class", "--out", out]),
            naming: csv, mentions: ["line 3, column 'a'", "not finite"])
    }

    func testEmptyClassesAfterFiltering() throws {
        let allUnlabelled = try writeScene(labels: [UInt8](repeating: 0, count: 20))
        assertRefused(
            try hsi(allUnlabelled), naming: allUnlabelled.labels,
            mentions: ["no labelled pixels left after dropping label(s) 0"])
        let oneClass = try writeScene(labels: (0..<20).map { UInt8($0 % 2) })
        assertRefused(try hsi(oneClass), naming: oneClass.labels, mentions: ["only one class (label 1) is left"])
    }

    func testNonNumericCSV() throws {
        let csv = directory.file("text.csv")
        try "a,b,class\n1,2,x\n3,four,y\n".write(toFile: csv, atomically: true, encoding: .utf8)
        assertRefused(
            try CommandRunner.cgt(["prepare", "csv", "--file", csv, "--label-column", "class", "--out", out]),
            naming: csv, mentions: ["line 3, column 'b'", "'four' is not a number"])
    }

    func testMissingInputFile() throws {
        let missing = directory.file("nowhere.npy")
        assertRefused(try hsi((missing, missing)), naming: missing, mentions: ["no such file"])
        assertRefused(
            try CommandRunner.cgt(["prepare", "fashion-mnist", "--dir", directory.path, "--out", out]),
            naming: directory.file("train-images-idx3-ubyte.gz"), mentions: ["no such file"])
        let elsewhere = directory.file("missing-folder/out.h5")
        let result = try hsi(try writeScene(), ["--out", elsewhere])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(
            result.stderr.contains("\(elsewhere): folder \(directory.file("missing-folder")) does not exist"),
            result.stderr)
    }

    /// A full disk, simulated with a file-size limit: writes fail with EFBIG instead of ENOSPC.
    func testAFullDiskLeavesNoFile() throws {
        let samples = 3000
        let x = try write(
            "x.npy",
            RawFiles.npy(
                descr: "<f4", shape: [samples, 20], data: RawFiles.bytes(Fixtures.normals(samples * 20, seed: 1))))
        let y = try write(
            "y.npy",
            RawFiles.npy(
                descr: "<i4", shape: [samples], data: RawFiles.bytes(Fixtures.labels(samples, classes: 3, seed: 2))))
        let command = "trap '' XFSZ; ulimit -f 128; exec \"$0\" prepare npy --x \"$1\" --y \"$2\" --out \"$3\""
        let result = try CommandRunner.run("/bin/bash", ["-c", command, CommandRunner.cgt, x, y, out])
        assertRefused(result, naming: out, mentions: ["File too large"])
        XCTAssertFalse(result.stderr.contains(".tmp-"), "the message names --out, not its temporary file")
    }

    func testInspectOfAFileThatIsNotADataset() throws {
        let path = try write("junk.h5", Array("not hdf5".utf8))
        let result = try CommandRunner.cgt(["inspect", path])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains(path), result.stderr)
    }
}
