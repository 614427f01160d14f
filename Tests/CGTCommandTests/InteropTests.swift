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

    /// A small synthetic file of 10 features and 3 classes.
    private func vectors(_ name: String) throws -> String {
        let data = directory.file(name)
        XCTAssertEqual(
            try CommandRunner.cgt([
                "synth", "--out", data, "--features", "10", "--classes", "3", "--train", "96", "--test", "64",
            ]).status, 0)
        return data
    }

    func testNumPyReproducesTheMLPsExits() throws {
        let data = try vectors("vectors.h5")
        let job = try directory.write(
            """
            model: {hidden: [16, 12, 12], exits: [1, 3], batchnorm: true, dropout: 0.1}
            training: {epochs: 3, batch_size: 16}
            """, to: "mlp.yaml")
        try assertNumPyMatches(job: job, data: data, run: directory.file("mlp"), exits: 2)
    }

    /// Boosted exits answer with the running sum of the heads' logits: the scripts read
    /// `method.boosting` from the stored job and sum as cgt does.
    func testNumPyReproducesBoostedExits() throws {
        let data = try vectors("boosted-vectors.h5")
        let job = try directory.write(
            """
            model: {hidden: [16, 12, 12], exits: [1, 2, 3], batchnorm: true, dropout: 0.1}
            method: {name: branchynet, weights: [1, 0.6, 0.4], boosting: true}
            training: {epochs: 3, batch_size: 16}
            """, to: "boosted.yaml")
        try assertNumPyMatches(job: job, data: data, run: directory.file("boosted"), exits: 3)
    }

    /// A uint8 file holds the source's bytes; the script normalises them as cgt's reader does.
    func testNumPyReadsByteFeaturesAsCGTDoes() throws {
        let count = 120
        var state: UInt32 = 3
        var bytes: [UInt8] = []
        for n in 0..<count {
            for _ in 0..<10 {
                state = state &* 1_664_525 &+ 1_013_904_223
                bytes.append(UInt8(min(255, Int(state >> 25) + 60 * (n % 3))))
            }
        }
        let x = directory.file("bytes.npy")
        let y = directory.file("byte_labels.npy")
        let data = directory.file("bytes.h5")
        try RawFiles.write(RawFiles.npy(descr: "|u1", shape: [count, 10], data: bytes), to: x)
        try RawFiles.write(
            RawFiles.npy(descr: "<i4", shape: [count], data: RawFiles.bytes((0..<count).map { Int32($0 % 3) })), to: y)
        let prepared = try CommandRunner.cgt([
            "prepare", "npy", "--x", x, "--y", y, "--storage", "uint8", "--normalize", "zscore",
            "--test-fraction", "0.4", "--out", data,
        ])
        XCTAssertEqual(prepared.status, 0, prepared.stderr)
        let job = try directory.write(
            """
            model: {hidden: [16, 12, 12], exits: [1, 3], batchnorm: true}
            training: {epochs: 3, batch_size: 16}
            """, to: "bytes.yaml")
        try assertNumPyMatches(job: job, data: data, run: directory.file("bytes"), exits: 2)
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
        // The maps shrink 10 -> 5 -> 2 -> 1, so the second pooling drops an odd row and column.
        let data = try quadrantImages("images")
        let job = try directory.write(
            """
            model: {kind: cnn, channels: [4, 6, 8], exits: [1, 2, 3], batchnorm: true}
            training: {epochs: 3, batch_size: 12}
            """, to: "cnn.yaml")
        try assertNumPyMatches(job: job, data: data, run: directory.file("cnn"), exits: 3)
    }

    /// Residual blocks under torchvision's names: an identity shortcut in stage 1, projections
    /// where stages 2 and 3 widen, two blocks per stage; the maps shrink 10 -> 5 -> 2.
    func testNumPyReproducesTheResNetsExits() throws {
        let data = try quadrantImages("resnet-images")
        let job = try directory.write(
            """
            model: {kind: resnet, stem_channels: 4, channels: [4, 6, 8], blocks_per_stage: 2, exits: [1, 2, 3]}
            training: {epochs: 3, batch_size: 12}
            """, to: "resnet.yaml")
        try assertNumPyMatches(job: job, data: data, run: directory.file("resnet"), exits: 3)
    }

    /// 10x10 two-channel images, prepared as `<name>.h5`: a bright quadrant per class (4) plus noise.
    private func quadrantImages(_ name: String) throws -> String {
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
        let x = directory.file("\(name).npy")
        let y = directory.file("\(name)-labels.npy")
        let data = directory.file("\(name).h5")
        try RawFiles.write(
            RawFiles.npy(descr: "<f4", shape: [count, 2, side, side], data: RawFiles.bytes(images)), to: x)
        try RawFiles.write(RawFiles.npy(descr: "<i4", shape: [count], data: RawFiles.bytes(labels)), to: y)
        let prepared = try CommandRunner.cgt([
            "prepare", "npy", "--x", x, "--y", y, "--test-fraction", "0.4", "--out", data,
        ])
        XCTAssertEqual(prepared.status, 0, prepared.stderr)
        return data
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
        try assertSamePredictions(
            ours: "\(run)/eval/samples.csv", theirs: numpyCSV, exits: exits, file: file, line: line)

        // The same checkpoint exported to ONNX and run under onnxruntime.
        guard FileManager.default.isExecutableFile(atPath: venvPython) else {
            return XCTFail(
                "\(venvPython) is missing (launch/setup makes .venv with onnx and onnxruntime)", file: file, line: line)
        }
        let model = "\(run)/model.onnx"
        let exported = try CommandRunner.run(venvPython, [onnxScript, "export", checkpoint, "--out", model])
        XCTAssertEqual(exported.status, 0, exported.stderr, file: file, line: line)
        let onnxCSV = "\(run)/onnx.csv"
        let ran = try CommandRunner.run(venvPython, [onnxScript, "run", model, data, "--out", onnxCSV])
        XCTAssertEqual(ran.status, 0, ran.stderr, file: file, line: line)
        try assertSamePredictions(
            ours: "\(run)/eval/samples.csv", theirs: onnxCSV, exits: exits, file: file, line: line)
        let metadata = try CommandRunner.run(
            venvPython,
            [
                "-c",
                "import onnx, sys; m = onnx.load(sys.argv[1]); print({p.key: p.value for p in m.metadata_props}['cgt_exit_policy'])",
                model,
            ])
        XCTAssertTrue(
            metadata.stdout.contains("\"criterion\": \"max_probability\""), metadata.stdout + metadata.stderr,
            file: file, line: line)
    }

    /// `python/cgt_torch.py` builds an nn.Module from the checkpoint whose exits and stored
    /// policy reproduce `cgt eval` sample by sample, and writes a state_dict back into a
    /// checkpoint cgt evaluates. Opt-in: PyTorch's wheel is several GiB, so this runs where a
    /// Python with torch and h5py exists (CGT_TORCH_PYTHON, or .venv-bench from launch/bench-vs-pytorch).
    func testPyTorchModuleReproducesEvalAndItsPolicy() throws {
        let python =
            ProcessInfo.processInfo.environment["CGT_TORCH_PYTHON"]
            ?? repository.appendingPathComponent(".venv-bench/bin/python").path
        guard FileManager.default.isExecutableFile(atPath: python),
            try CommandRunner.run(python, ["-c", "import torch, h5py"]).status == 0
        else {
            throw XCTSkip("no Python with torch and h5py (set CGT_TORCH_PYTHON, or run launch/bench-vs-pytorch once)")
        }
        let data = try Fixtures.writeDataset(
            in: directory, name: "torch.h5", features: 10, classes: 4, train: 128, test: 64, spread: 4)
        for (name, model) in [
            ("mlp", "model: {hidden: [16, 12], exits: [1, 2], batchnorm: true, dropout: 0.1}"),
            (
                "classynet",
                "model: {hidden: [16, 16], exits: [1, 2]}\nmethod: {name: classynet, weights: [1, 0.5], grouping_epochs: 1, group_size: 2}"
            ),
        ] {
            let job = try directory.write("\(model)\ntraining: {epochs: 3, batch_size: 16}\n", to: "torch-\(name).yaml")
            let run = directory.file("torch-\(name)")
            XCTAssertEqual(try CommandRunner.cgt(["train", job, "--data", data, "--out", run, "--quiet"]).status, 0)
            let checkpoint = "\(run)/checkpoints/last.h5"
            XCTAssertEqual(
                try CommandRunner.cgt([
                    "eval", "--checkpoint", checkpoint, "--criterion", "margin", "--thresholds", "0.3,0", "--out",
                    "\(run)/eval",
                    "--save-policy",
                ]).status, 0)
            let script = """
                import csv, sys, h5py, torch
                sys.path.insert(0, sys.argv[1])
                from cgt_torch import load, save_state_dict
                model = load(sys.argv[2])
                x = torch.tensor(h5py.File(sys.argv[3])["test/x"][()])
                prediction, answered = model.early_exit(x)
                rows = list(csv.DictReader(open(sys.argv[4])))
                bad = [i for i, r in enumerate(rows) if int(r["prediction"]) != prediction[i].item() or int(r["exit"]) != answered[i].item() + 1]
                print(f"{len(rows) - len(bad)} of {len(rows)} agree; first disagreements: {bad[:5]}")
                state = model.state_dict()
                state["exits.0.linear.bias"] = state["exits.0.linear.bias"] + 100 * torch.arange(state["exits.0.linear.bias"].numel())
                save_state_dict(state, sys.argv[2], sys.argv[5])
                sys.exit(1 if bad else 0)
                """
            let edited = "\(run)/edited.h5"
            let result = try CommandRunner.run(
                python,
                [
                    "-c", script, repository.appendingPathComponent("python").path, checkpoint, data,
                    "\(run)/eval/samples.csv", edited,
                ])
            XCTAssertEqual(result.status, 0, "\(name): \(result.stdout) \(result.stderr)")
            // The written checkpoint is a cgt checkpoint with the new tensors: exit 1 now always names its last output.
            let again = try CommandRunner.cgt(["eval", "--checkpoint", edited, "--out", "\(run)/edited-eval"])
            XCTAssertEqual(again.status, 0, again.stderr)
            let predictions = try CSVTable(path: "\(run)/edited-eval/samples.csv").column("exit1_prediction")
            XCTAssertEqual(Set(predictions), [name == "classynet" ? "-1" : "3"], name)
        }
    }

    /// `logging.tensorboard: true` writes event files that TensorBoard's own reader loads, with
    /// valid checksums on every record, a scalar per step and per epoch, and epoch values that
    /// are metrics.jsonl's.
    func testTensorBoardReadsTheEventFiles() throws {
        guard FileManager.default.isExecutableFile(atPath: venvPython) else {
            return XCTFail("\(venvPython) is missing (launch/setup makes .venv with tensorboard)")
        }
        let data = try Fixtures.writeDataset(
            in: directory, name: "tb.h5", features: 10, classes: 3, train: 96, test: 32, spread: 4)
        let job = try directory.write(
            "model: {hidden: [16, 16], exits: [1, 2]}\ntraining: {epochs: 3, batch_size: 16}\nlogging: {tensorboard: true}\n",
            to: "tb.yaml")
        let run = directory.file("tb")
        XCTAssertEqual(try CommandRunner.cgt(["train", job, "--data", data, "--out", run, "--quiet"]).status, 0)
        let script = """
            import glob, json, struct, sys
            from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
            from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
            files = glob.glob(sys.argv[1] + "/tensorboard/events.out.tfevents.*")
            assert len(files) == 1, files
            raw, records, at = open(files[0], "rb").read(), 0, 0
            while at < len(raw):
                header = raw[at:at + 8]
                (length,) = struct.unpack("<Q", header)
                assert struct.unpack("<I", raw[at + 8:at + 12])[0] == masked_crc32c(header), "length checksum"
                body = raw[at + 12:at + 12 + length]
                assert struct.unpack("<I", raw[at + 12 + length:at + 16 + length])[0] == masked_crc32c(body), "data checksum"
                at, records = at + 16 + length, records + 1
            events = EventAccumulator(files[0]); events.Reload()
            metrics = [json.loads(line) for line in open(sys.argv[1] + "/metrics.jsonl")]
            steps = events.Scalars("train/loss_exit2")
            assert [e.step for e in steps] == list(range(1, metrics[-1]["global_step"] + 1)), [e.step for e in steps]
            epochs = events.Scalars("epoch/loss_exit1")
            assert [e.step for e in epochs] == [m["global_step"] for m in metrics]
            for e, m in zip(epochs, metrics):
                assert abs(e.value - m["loss"][0]) <= 1e-6 * abs(m["loss"][0]), (e.value, m["loss"][0])
            assert len(events.Scalars("test/accuracy")) == 1
            print(records, "records")
            """
        let result = try CommandRunner.run(venvPython, ["-c", script, run])
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
    }

    private var repository: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
    }
    private var venvPython: String { repository.appendingPathComponent(".venv/bin/python").path }
    private var onnxScript: String { repository.appendingPathComponent("python/cgt_onnx.py").path }

    /// Every exit's prediction and maximum probability in `theirs` equals `cgt eval`'s samples.csv.
    private func assertSamePredictions(
        ours oursPath: String, theirs theirsPath: String, exits: Int, file: StaticString, line: UInt
    ) throws {
        let ours = try CSVTable(path: oursPath)
        let theirs = try CSVTable(path: theirsPath)
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
