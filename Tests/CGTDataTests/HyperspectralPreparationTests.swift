import CGTData
import CGTHDF5
import CGTTestSupport
import XCTest

/// A small hyperspectral scene end to end: labelled pixels, class remapping, statistics from the
/// training split only, the written file with its provenance, and the scene's bad inputs.
final class HyperspectralPreparationTests: XCTestCase {
    let directory = TemporaryDirectory("hsi")
    let (height, width, bands) = (6, 5, 4)

    /// Label of pixel (r, c): 0 (unlabelled) on a checkerboard, else 3, 7 or 9 by column.
    func label(_ r: Int, _ c: Int) -> UInt8 { (r + c) % 2 == 0 ? 0 : [3, 7, 9][c % 3] }
    func value(_ r: Int, _ c: Int, _ b: Int) -> UInt16 { UInt16(1000 + 100 * r + 10 * c + b) }

    /// Writes the cube (Fortran order, like the real Indian Pines file) and the label map.
    func writeScene(cubeName: String = "cube.npy", labelsName: String = "gt.npy") throws -> (
        cube: String, labels: String
    ) {
        var fortran: [UInt16] = []
        for b in 0..<bands { for c in 0..<width { for r in 0..<height { fortran.append(value(r, c, b)) } } }
        let cube = directory.file(cubeName)
        let labels = directory.file(labelsName)
        try RawFiles.write(
            RawFiles.npy(
                descr: "<u2", shape: [height, width, bands], fortranOrder: true, data: RawFiles.bytes(fortran)),
            to: cube)
        var map: [UInt8] = []
        for r in 0..<height { for c in 0..<width { map.append(label(r, c)) } }
        try RawFiles.write(RawFiles.npy(descr: "|u1", shape: [height, width], data: map), to: labels)
        return (cube, labels)
    }

    func prepare(
        _ scene: (cube: String, labels: String), ignoring: [Int64] = [0], normalization: Normalization.Method = .minmax
    ) throws -> PreparedDataset {
        try HyperspectralPreparation.prepare(
            cube: scene.cube, labels: scene.labels, ignoring: ignoring, classNamesFile: nil,
            normalization: .fit(normalization),
            plan: SplitPlan(testFraction: SplitFraction("0.3")!, seed: 7), commandLine: "cgt prepare hsi ...",
            toolVersion: "9.9")
    }

    func testLabelledPixelsBecomeNormalisedSamples() throws {
        let prepared = try prepare(try writeScene())
        XCTAssertEqual(prepared.classNames, ["class 3", "class 7", "class 9"])
        XCTAssertEqual(prepared.attributes["label_ids"], .ints([3, 7, 9]))
        XCTAssertEqual(prepared.attributes["image_shape"], .ints([height, width]))
        XCTAssertEqual(prepared.featureShape, [bands])
        let train = try XCTUnwrap(prepared.split(.train))
        let test = try XCTUnwrap(prepared.split(.test))
        XCTAssertEqual(train.count + test.count, 15, "the 15 labelled pixels of the 30")
        let trainPixels = try XCTUnwrap(prepared.sourceIndices[.train])
        let testPixels = try XCTUnwrap(prepared.sourceIndices[.test])
        XCTAssertEqual(Set(trainPixels + testPixels).count, 15)
        // Statistics of the training pixels only, computed here from the scene's formula.
        let pixels = { (list: [Int64]) in list.map { (Int($0) / self.width, Int($0) % self.width) } }
        let low = (0..<bands).map { b in pixels(trainPixels).map { Double(value($0.0, $0.1, b)) }.min()! }
        let high = (0..<bands).map { b in pixels(trainPixels).map { Double(value($0.0, $0.1, b)) }.max()! }
        XCTAssertEqual(prepared.attributes["normalization_min"], .doubles(low))
        XCTAssertEqual(prepared.attributes["normalization_max"], .doubles(high))
        for (part, list) in [(train, trainPixels), (test, testPixels)] {
            for (row, (r, c)) in pixels(list).enumerated() {
                XCTAssertEqual(part.labels[row], Int32([3, 7, 9].firstIndex(of: label(r, c))!))
                for b in 0..<bands {
                    let expected = Float((Double(value(r, c, b)) - low[b]) / (high[b] - low[b]))
                    XCTAssertEqual(part.features[row * bands + b], expected, "pixel (\(r), \(c)) band \(b)")
                }
            }
        }
    }

    func testTheWrittenFile() throws {
        let scene = try writeScene()
        let path = directory.file("scene.h5")
        try DatasetWriter.write(try prepare(scene, normalization: .zscore), to: path)
        XCTAssertFalse(directory.contents().contains { $0.contains(".tmp") }, "no temporary file left")
        let reader = try DatasetReader(path: path)
        XCTAssertEqual(reader.classNames, ["class 3", "class 7", "class 9"])
        XCTAssertEqual(reader.splitSizes.values.reduce(0, +), 15)
        try reader.close()
        try withOpenHDF5File(path) { file in
            let root = file.root
            XCTAssertEqual(try root.stringAttribute("source_kind"), "hsi")
            XCTAssertEqual(try root.stringArrayAttribute("source_files"), [scene.cube, scene.labels])
            let cubeBytes = try XCTUnwrap(FileManager.default.contents(atPath: scene.cube))
            XCTAssertEqual(try root.stringArrayAttribute("source_sha256")[0], SHA256.hexDigest(of: [UInt8](cubeBytes)))
            XCTAssertEqual(try root.intArrayAttribute("source_bytes")[0], cubeBytes.count)
            XCTAssertEqual(try root.stringAttribute("cgt_version"), "9.9")
            XCTAssertEqual(try root.stringAttribute("command_line"), "cgt prepare hsi ...")
            XCTAssertEqual(try root.stringAttribute("normalization"), "zscore")
            XCTAssertEqual(try root.doubleArrayAttribute("normalization_mean").count, bands)
            XCTAssertEqual(try root.stringAttribute("split_method"), "stratified")
            XCTAssertEqual(try root.intAttribute("split_seed"), 7)
            XCTAssertNotNil(ISO8601DateFormatter().date(from: try root.stringAttribute("created_at")))
            let x = try root.openDataset("train/x")
            XCTAssertEqual(x.filters, ["shuffle", "deflate"])
            XCTAssertEqual(try root.openDataset("train/source_index").elementType, .int64)
        }
        let h5dump = "/usr/bin/h5dump"
        if FileManager.default.isExecutableFile(atPath: h5dump) {
            let dump = try runTool(h5dump, ["-H", path])
            XCTAssertEqual(dump.status, 0, dump.output)
            for object in [
                "GROUP \"train\"", "DATASET \"x\"", "DATASET \"source_index\"", "ATTRIBUTE \"source_sha256\"",
            ] {
                XCTAssertTrue(dump.output.contains(object), "h5dump shows \(object)")
            }
        }
    }

    func testBadScenes() throws {
        let scene = try writeScene()
        let other = directory.file("other.npy")
        try RawFiles.write(
            RawFiles.npy(
                descr: "|u1", shape: [height, width + 1], data: [UInt8](repeating: 1, count: height * (width + 1))),
            to: other)
        assertDatasetError(file: other, mentions: ["label map is 6 x 6 pixels", "is 6 x 5"]) {
            try prepare((scene.cube, other))
        }
        assertDatasetError(file: scene.labels, mentions: ["cube has shape [6, 5]", "expected three axes"]) {
            try prepare((scene.labels, scene.labels))
        }
        assertDatasetError(file: scene.labels, mentions: ["no labelled pixels left", "3, 7, 9"]) {
            try prepare(scene, ignoring: [0, 3, 7, 9])
        }
        assertDatasetError(file: scene.labels, mentions: ["only one class (label 9)"]) {
            try prepare(scene, ignoring: [0, 3, 7])
        }
        try RawFiles.write(
            RawFiles.npy(
                descr: "<f4", shape: [height, width],
                data: RawFiles.bytes([Float](repeating: 0.5, count: height * width))), to: other)
        assertDatasetError(file: other, mentions: ["element 0 is 0.5", "not an integer label"]) {
            try prepare((scene.cube, other))
        }
    }

    func testNaNInALabelledPixelIsRefusedAndInAnUnlabelledOneIgnored() throws {
        let scene = try writeScene()
        func writeCube(nanAt pixel: (Int, Int)) throws -> String {
            var values = [Float](repeating: 1, count: height * width * bands)
            for (i, _) in values.enumerated() { values[i] = Float(i % 17) }
            values[(pixel.0 * width + pixel.1) * bands + 2] = .nan
            let path = directory.file("nan.npy")
            try RawFiles.write(
                RawFiles.npy(descr: "<f4", shape: [height, width, bands], data: RawFiles.bytes(values)), to: path)
            return path
        }
        let labelled = try writeCube(nanAt: (0, 1))
        assertDatasetError(file: labelled, mentions: ["pixel (row 0, column 1), band 2 is nan"]) {
            try prepare((labelled, scene.labels))
        }
        let unlabelled = try writeCube(nanAt: (0, 0))
        XCTAssertNoThrow(try prepare((unlabelled, scene.labels)))
    }
}
