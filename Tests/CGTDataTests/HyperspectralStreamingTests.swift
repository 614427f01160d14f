import CGTTestSupport
import Foundation
import XCTest

@testable import CGTData

/// `cgt prepare hsi` reading the cube a block of pixels at a time (a Fortran-order cube after
/// copying its pixels in C order to a temporary file) writes the file that reading it whole writes.
final class HyperspectralStreamingTests: XCTestCase {
    let directory = TemporaryDirectory("hsi-stream")
    let createdAt = Date(timeIntervalSince1970: 1_800_000_000)
    let (height, width, bands) = (23, 17, 6)

    /// Label of pixel (r, c): 0 (unlabelled) now and then, else 2, 5, 6 or 8.
    func label(_ r: Int, _ c: Int) -> UInt8 { (r * 7 + c * 3) % 5 == 0 ? 0 : [2, 5, 6, 8][(r + 2 * c) % 4] }
    func value(_ r: Int, _ c: Int, _ b: Int) -> Double {
        Double((r * 131 + c * 71 + b * 37) % 1_000) + 0.25 * Double(b)
    }

    /// The cube `[H, W, B]` and label map as `.npy` files (in Fortran order when asked) or as
    /// members of one `.npz`; returns their names as `cgt prepare hsi` takes them.
    func scene(
        _ tag: String, descr: String, fortran: Bool, archive: Bool = false, bytes: Bool = false,
        poison: (Int, Int, Int)? = nil
    ) throws -> (cube: String, labels: String) {
        let value = { (r: Int, c: Int, b: Int) in bytes ? Double(Int(self.value(r, c, b)) % 256) : self.value(r, c, b) }
        var cube: [Double] = []
        var map: [UInt8] = []
        if fortran {
            for b in 0..<bands { for c in 0..<width { for r in 0..<height { cube.append(value(r, c, b)) } } }
            for c in 0..<width { for r in 0..<height { map.append(label(r, c)) } }
        } else {
            for r in 0..<height { for c in 0..<width { for b in 0..<bands { cube.append(value(r, c, b)) } } }
            for r in 0..<height { for c in 0..<width { map.append(label(r, c)) } }
        }
        if let (r, c, b) = poison {
            cube[fortran ? r + height * (c + width * b) : (r * width + c) * bands + b] = .nan
        }
        let data = descr == "<u2" ? RawFiles.bytes(cube.map { UInt16($0) }) : RawFiles.bytes(cube.map { Float($0) })
        let cubeFile = RawFiles.npy(descr: descr, shape: [height, width, bands], fortranOrder: fortran, data: data)
        let mapFile = RawFiles.npy(descr: "|u1", shape: [height, width], fortranOrder: fortran, data: map)
        if archive {
            let path = directory.file("\(tag).npz")
            try RawFiles.write(
                RawFiles.zip([
                    ("cube.npy", cubeFile, Deflate.compress(cubeFile, gzip: false)), ("gt.npy", mapFile, nil),
                ]), to: path)
            return ("\(path):cube", "\(path):gt")
        }
        let (cubePath, mapPath) = (directory.file("\(tag)-cube.npy"), directory.file("\(tag)-gt.npy"))
        try RawFiles.write(cubeFile, to: cubePath)
        try RawFiles.write(mapFile, to: mapPath)
        return (cubePath, mapPath)
    }

    func bothWays(
        _ files: (cube: String, labels: String), tag: String, normalization: Normalization.Method,
        storage: FeatureStorage = .float32, validation: SplitFraction = .zero, stratified: Bool = true,
        blockBytes: Int? = nil
    ) throws -> (memory: String, streamed: String) {
        let plan = SplitPlan(
            testFraction: SplitFraction(0.3)!, validationFraction: validation, stratified: stratified, seed: 3)
        let memory = directory.file("\(tag)-memory.h5")
        let streamed = directory.file("\(tag)-streamed.h5")
        try DatasetWriter.write(
            HyperspectralPreparation.prepare(
                cube: files.cube, labels: files.labels, ignoring: [0], classNamesFile: nil,
                normalization: .fit(normalization), plan: plan, commandLine: "cgt prepare hsi", toolVersion: "test",
                storage: storage, createdAt: createdAt), to: memory)
        // Blocks of two pixels and a ragged remainder (and, in Fortran order, one image row).
        let blockBytes = blockBytes ?? 2 * bands * 4 + 3
        let content = try HyperspectralPreparation.content(
            cube: files.cube, labels: files.labels, ignoring: [0], classNamesFile: nil,
            normalization: .fit(normalization), plan: plan, commandLine: "cgt prepare hsi", toolVersion: "test",
            storage: storage, createdAt: createdAt, blockBytes: blockBytes)
        XCTAssertEqual(content.writeBlockBytes, blockBytes, "\(tag): the cube was streamed, not read whole")
        try DatasetWriter.write(content, to: streamed)
        return (memory, streamed)
    }

    func testStreamedFilesEqualTheFilesPreparedInMemory() throws {
        for (tag, descr, fortran, archive, normalization, storage) in [
            ("fortran-u2-minmax", "<u2", true, false, Normalization.Method.minmax, FeatureStorage.float32),
            ("c-f4-zscore", "<f4", false, false, .zscore, .float32),
            ("fortran-u2-uint8", "<u2", true, false, .none, .uint8),
            ("archive-c-f4-minmax", "<f4", false, true, .minmax, .float32),
            ("archive-fortran-u2-zscore", "<u2", true, true, .zscore, .float32),
        ] {
            let files = try scene(tag, descr: descr, fortran: fortran, archive: archive, bytes: storage == .uint8)
            let both = try bothWays(
                files, tag: tag, normalization: normalization, storage: storage, validation: SplitFraction(0.2)!)
            try assertSameDatasetFile(both.memory, both.streamed, tag)
        }
    }

    /// Indian Pines as it ships (a Fortran-order `<u2` cube), from this checkout's
    /// `hdf5_data/raw` (`hdf5_data/fetch-indian-pines`) or `CGT_INDIAN_PINES_RAW`, in blocks of
    /// 1,000 pixels (21 blocks).
    func testTheRealIndianPinesWhenPresent() throws {
        let checkout = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let raw =
            ProcessInfo.processInfo.environment["CGT_INDIAN_PINES_RAW"]
            ?? checkout.appendingPathComponent("hdf5_data/raw").path
        let cube = "\(raw)/Indian_pines_corrected.npy"
        try XCTSkipUnless(FileManager.default.fileExists(atPath: cube), "Indian Pines is not in \(raw)")
        let both = try bothWays(
            (cube, "\(raw)/Indian_pines_gt.npy"), tag: "indian-pines", normalization: .minmax, stratified: true,
            blockBytes: 200 * 4 * 1000 + 3)
        try assertSameDatasetFile(both.memory, both.streamed, "indian-pines")
    }

    func testANonFinitePixelIsRefusedAsWhenReadWhole() throws {
        for fortran in [true, false] {
            let tag = "nan-\(fortran)"
            // Pixel (4, 2) is labelled.
            XCTAssertNotEqual(label(4, 2), 0)
            let files = try scene(tag, descr: "<f4", fortran: fortran, poison: (4, 2, 3))
            let plan = SplitPlan(testFraction: SplitFraction(0.3)!, seed: 3)
            var errors: [String] = []
            for streamed in [false, true] {
                do {
                    if streamed {
                        _ = try HyperspectralPreparation.content(
                            cube: files.cube, labels: files.labels, ignoring: [0], classNamesFile: nil,
                            normalization: .fit(.minmax), plan: plan, commandLine: "", toolVersion: "",
                            storage: .float32, createdAt: createdAt, blockBytes: 40)
                    } else {
                        _ = try HyperspectralPreparation.prepare(
                            cube: files.cube, labels: files.labels, ignoring: [0], classNamesFile: nil,
                            normalization: .fit(.minmax), plan: plan, commandLine: "", toolVersion: "",
                            createdAt: createdAt)
                    }
                    XCTFail("\(tag): not refused")
                } catch {
                    errors.append(String(describing: error))
                }
            }
            XCTAssertEqual(errors.first, errors.last, tag)
            XCTAssertTrue(errors[0].contains("pixel (row 4, column 2), band 3 is nan"), errors[0])
        }
    }
}
