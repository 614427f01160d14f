import CGTTestSupport
import Foundation
import XCTest

/// A checkpoint is usable outside cgt: `hdf5_data/checkpoint_forward.py` rebuilds the network
/// from the HDF5 files with h5py and NumPy alone, reading parameters under PyTorch's names and
/// shapes, and its per-exit predictions and confidences must be those `cgt eval` reports in
/// samples.csv. A wrong layout (a transposed weight, a misnamed BatchNorm buffer, another
/// padding or pooling rule) changes the numbers and fails the comparison.
final class InteropTests: XCTestCase {
    let directory = TemporaryDirectory("interop")

    /// The repository's hdf5_data folder, found from this file's path.
    private var script: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
            .appendingPathComponent("hdf5_data/checkpoint_forward.py").path
    }

    func testNumPyReproducesTheMLPsExits() throws {
        let data = directory.file("vectors.h5")
        XCTAssertEqual(
            try CommandRunner.cgt([
                "synth", "--out", data, "--features", "10", "--classes", "3", "--train", "96", "--test", "64",
            ]).status, 0)
        let job = try directory.write(
            """
            model: {hidden: [16, 12, 12], exits: [1, 3], batchnorm: true, dropout: 0.1}
            training: {epochs: 3, batch_size: 16}
            """, to: "mlp.yaml")
        try assertNumPyMatches(job: job, data: data, run: directory.file("mlp"), exits: 2)
    }

    /// ClassyNet's shallow heads have an "other" output; where it wins, the exit declines (-1).
    func testNumPyReproducesClassyNetsDecliningExits() throws {
        let data = directory.file("groups.h5")
        XCTAssertEqual(
            try CommandRunner.cgt([
                "synth", "--out", data, "--features", "10", "--classes", "4", "--train", "128", "--test", "64",
            ]).status, 0)
        let job = try directory.write(
            """
            model: {hidden: [16, 16, 16], exits: [1, 2, 3]}
            method: {name: classynet, weights: [1, 0.6, 0.3], grouping_epochs: 1, group_size: 1}
            training: {epochs: 4, batch_size: 16}
            """, to: "classynet.yaml")
        let run = directory.file("classynet")
        try assertNumPyMatches(job: job, data: data, run: run, exits: 3)
        let declined = try CSVTable(path: "\(run)/eval/samples.csv").column("exit1_prediction").filter { $0 == "-1" }
        XCTAssertFalse(declined.isEmpty, "exit 1 answers one class; it must decline some test samples")
    }

    func testNumPyReproducesTheCNNsExits() throws {
        // 10x10 two-channel images: a bright quadrant per class plus noise. The maps shrink
        // 10 -> 5 -> 2 -> 1, so the second pooling drops an odd row and column.
        let count = 120
        let classes = 4
        let side = 10
        let noise = Fixtures.normals(count * 2 * side * side, seed: 11, scale: 0.5)
        var images = [Float](repeating: 0, count: count * 2 * side * side)
        var labels = [Int32](repeating: 0, count: count)
        for n in 0..<count {
            let label = n % classes
            labels[n] = Int32(label)
            for c in 0..<2 {
                for yy in 0..<side {
                    for xx in 0..<side {
                        let i = ((n * 2 + c) * side + yy) * side + xx
                        let inQuadrant = (yy < side / 2) == (label < 2) && (xx < side / 2) == (label % 2 == 0)
                        images[i] = (inQuadrant ? 1 : 0) + noise[i]
                    }
                }
            }
        }
        let x = directory.file("images.npy")
        let y = directory.file("labels.npy")
        let data = directory.file("images.h5")
        try RawFiles.write(
            RawFiles.npy(descr: "<f4", shape: [count, 2, side, side], data: RawFiles.bytes(images)), to: x)
        try RawFiles.write(RawFiles.npy(descr: "<i4", shape: [count], data: RawFiles.bytes(labels)), to: y)
        let prepared = try CommandRunner.cgt([
            "prepare", "npy", "--x", x, "--y", y, "--test-fraction", "0.4", "--out", data,
        ])
        XCTAssertEqual(prepared.status, 0, prepared.stderr)
        let job = try directory.write(
            """
            model: {kind: cnn, channels: [4, 6, 8], exits: [1, 2, 3], batchnorm: true}
            training: {epochs: 3, batch_size: 12}
            """, to: "cnn.yaml")
        try assertNumPyMatches(job: job, data: data, run: directory.file("cnn"), exits: 3)
    }

    /// Trains `job`, evaluates its checkpoint as stored (with BatchNorm the statistics training's
    /// evaluation re-estimated, which the script reads too) and compares every exit of every
    /// test sample; `cgt eval` must report what training reported, so the file is the model measured.
    private func assertNumPyMatches(
        job: String, data: String, run: String, exits: Int,
        file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let trained = try CommandRunner.cgt(["train", job, "--data", data, "--out", run, "--quiet"])
        XCTAssertEqual(trained.status, 0, trained.stderr, file: file, line: line)
        let checkpoint = "\(run)/checkpoints/last.h5"
        let evaluated = try CommandRunner.cgt([
            "eval", "--checkpoint", checkpoint, "--data", data, "--out", "\(run)/eval",
        ])
        XCTAssertEqual(evaluated.status, 0, evaluated.stderr, file: file, line: line)
        func report(_ path: String) throws -> [String: Any] {
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any]
                ?? [:]
        }
        let training = try report("\(run)/eval.json")
        let evaluation = try report("\(run)/eval/eval.json")
        for key in ["accuracy", "per_exit_accuracy", "exit_fractions"] {
            XCTAssertEqual(
                "\(training[key] ?? "none")", "\(evaluation[key] ?? "none")",
                "\(key): cgt eval reports what training did",
                file: file, line: line)
        }
        XCTAssertEqual(evaluation["checkpoint"] as? String, checkpoint, file: file, line: line)
        XCTAssertEqual(evaluation["format_version"] as? Int, 1, file: file, line: line)
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/python3"),
            try CommandRunner.run("/usr/bin/python3", ["-c", "import h5py, numpy"]).status == 0
        else {
            return XCTFail(
                "/usr/bin/python3 with h5py and NumPy is missing (launch/setup installs python3-h5py)", file: file,
                line: line)
        }
        let numpyCSV = "\(run)/numpy.csv"
        let forward = try CommandRunner.run("/usr/bin/python3", [script, checkpoint, data, "--out", numpyCSV])
        XCTAssertEqual(forward.status, 0, forward.stderr, file: file, line: line)

        let ours = try CSVTable(path: "\(run)/eval/samples.csv")
        let theirs = try CSVTable(path: numpyCSV)
        XCTAssertEqual(theirs.rows.count, ours.rows.count, "samples", file: file, line: line)
        XCTAssertGreaterThan(ours.rows.count, 0, file: file, line: line)
        XCTAssertEqual(theirs.column("label"), ours.column("label"), "labels read by h5py", file: file, line: line)
        var compared = 0
        for e in 1...exits {
            let probability = "exit\(e)_max_probability"
            let prediction = "exit\(e)_prediction"
            let margins = ours.column("exit\(e)_margin").map { Double($0)! }
            for (i, (a, b)) in zip(ours.column(probability), theirs.column(probability)).enumerated() {
                XCTAssertEqual(
                    Double(a)!, Double(b)!, accuracy: 1e-4, "sample \(i), exit \(e): max probability", file: file,
                    line: line)
            }
            for (i, (a, b)) in zip(ours.column(prediction), theirs.column(prediction)).enumerated()
            where margins[i] > 1e-4 || a == "-1" {
                XCTAssertEqual(a, b, "sample \(i), exit \(e): prediction", file: file, line: line)
                compared += 1
            }
        }
        // Near-ties may round either way (a declining exit's margin is 0, so declines are
        // always compared); nearly all predictions must be compared.
        XCTAssertGreaterThan(compared, exits * ours.rows.count * 9 / 10, file: file, line: line)
    }
}

/// A CSV file with a header row and no quoted fields.
private struct CSVTable {
    let header: [String]
    let rows: [[String]]

    init(path: String) throws {
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map {
            $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        }
        header = lines.first ?? []
        rows = Array(lines.dropFirst())
    }

    func column(_ name: String) -> [String] {
        guard let index = header.firstIndex(of: name) else {
            XCTFail("no column \(name) in \(header)")
            return []
        }
        return rows.map { $0[index] }
    }
}
