import CGTHDF5
import CGTTestSupport
import Foundation
import XCTest

/// Input made to break cgt: files that declare sizes they do not hold, counts that overflow,
/// YAML bombs, hostile names and links, a second writer, crash leftovers. Every case must end
/// in exit status 1 with one line naming the file and what is wrong, within a time limit,
/// under an address-space limit (so a runaway allocation fails the test instead of the
/// machine), and without files left where a refused run would have written.
final class UntrustedInputTests: XCTestCase {
    let directory = TemporaryDirectory("untrusted")
    /// The memory budget the children run with, and the address space they may map (MPI and
    /// oneDNN map far more than they touch).
    let environment = ["CGT_MEMORY_LIMIT": "1G"]
    let addressSpaceKiB = 4_000_000

    /// Runs cgt under `ulimit -v` and the memory budget (`memoryLimit` for another than 1G),
    /// with `extra` in its environment.
    private func cgt(
        _ arguments: [String], memoryLimit: String? = nil, environment extra: [String: String] = [:]
    ) throws -> CommandResult {
        var environment = environment.merging(extra) { $1 }
        if let memoryLimit { environment["CGT_MEMORY_LIMIT"] = memoryLimit }
        return try CommandRunner.run(
            "/bin/sh", ["-c", "ulimit -v \(addressSpaceKiB); exec \"$0\" \"$@\"", CommandRunner.cgt] + arguments,
            timeout: 60, environment: environment)
    }

    /// Asserts a clean refusal: status 1 (not a signal), one line on stderr holding every part.
    private func assertRefused(
        _ result: CommandResult, _ parts: [String], _ label: String, file: StaticString = #filePath, line: UInt = #line
    ) {
        checked += 1
        XCTAssertEqual(result.status, 1, "\(label): \(result.stderr)", file: file, line: line)
        let lines = result.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, "\(label): one line, got \(result.stderr)", file: file, line: line)
        for part in parts {
            XCTAssertTrue(
                result.stderr.contains(part), "\(label): '\(part)' missing in \(result.stderr)", file: file, line: line)
        }
    }

    private func noRunFolderContents(_ run: String, _ label: String, file: StaticString = #filePath, line: UInt = #line)
    {
        let left = (try? FileManager.default.contentsOfDirectory(atPath: run)) ?? []
        XCTAssertEqual(left, [], "\(label): a refused run leaves nothing, found \(left)", file: file, line: line)
    }

    private func job(
        _ text: String = "model: {hidden: [8], exits: [1]}\ntraining: {epochs: 1, batch_size: 4}\n",
        name: String = "job.yaml"
    ) throws -> String {
        try directory.write(text, to: name)
    }

    /// A real checkpoint to make lying copies of.
    private func trainedCheckpoint() throws -> String {
        let data = try Fixtures.writeDataset(in: directory, features: 4, classes: 3, train: 32, test: 8)
        let run = directory.file("good-run")
        let result = try CommandRunner.cgt(["train", try job(), "--data", data, "--out", run, "--quiet"])
        XCTAssertEqual(result.status, 0, result.stderr)
        return "\(run)/checkpoints/last.h5"
    }

    /// `cgt train` and `cgt inspect` of the dataset `data` both refuse it in one line naming
    /// the file and `parts`; the refused training leaves its run folder empty.
    private func assertTrainAndInspectRefuse(_ data: String, _ parts: [String]) throws {
        let name = URL(fileURLWithPath: data).deletingPathExtension().lastPathComponent
        let run = directory.file("run-\(name)")
        assertRefused(
            try cgt(["train", try job(), "--data", data, "--out", run]), [name + ".h5"] + parts, "train \(name)")
        noRunFolderContents(run, name)
        assertRefused(try cgt(["inspect", data]), [name + ".h5"] + parts, "inspect \(name)")
    }

    /// Runs Corpus/make_corpus.py with `arguments` around a new folder `name`; returns the folder.
    private func runCorpusScript(_ name: String, _ arguments: (String) throws -> [String]) throws -> String {
        guard try CommandRunner.run("/usr/bin/python3", ["-c", "import h5py, numpy"]).status == 0 else {
            throw XCTSkip("/usr/bin/python3 with h5py and NumPy is missing (launch/setup installs python3-h5py)")
        }
        let folder = directory.file(name)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "Corpus/make_corpus.py"
        ).path
        let made = try CommandRunner.run("/usr/bin/python3", [script] + (try arguments(folder)))
        XCTAssertEqual(made.status, 0, made.stderr)
        return folder
    }

    /// Writes the corpus (Corpus/make_corpus.py) with copies of a trained checkpoint; returns its folder.
    private func makeCorpus() throws -> String {
        try runCorpusScript("corpus") { [$0, try self.trainedCheckpoint()] }
    }

    /// Cases checked, reported at the end of each test so the closing count is read, not guessed.
    private var checked = 0

    override func tearDown() {
        print("untrusted input: \(name) checked \(checked) cases")
        super.tearDown()
    }

    func testLyingDatasetsAndCheckpointsAreRefusedWithinBudget() throws {
        let corpus = try makeCorpus()
        let datasets: [(String, [String])] = [
            // (file, what the line says; train and inspect both refuse it)
            ("huge_train", ["/train/y", "1099511627776 samples", "memory limit"]),
            ("huge_test", ["/test/y", "1099511627776 samples", "memory limit"]),
            ("huge_features", ["feature_shape", "4.0 TiB", "memory limit"]),
            ("overflow_features", ["feature_shape", "overflow"]),
            ("many_classes", ["num_classes is 1000000000"]),
            ("max_classes", ["num_classes is 9223372036854775807"]),
            ("label_out_of_range", ["/train/y", "label 7 at row 3"]),
            ("nan_feature", ["/train/x", "non-finite value nan at row 5"]),
            ("float64_features", ["/train/x", "float64"]),
            ("corrupt_chunk", ["/train/x", "inflate"]),
            ("no_test_split", ["/test", "missing split"]),
            ("not_hdf5", ["not_hdf5.h5", "cannot open as HDF5"]),
            ("truncated", ["truncated.h5", "truncated file"]),
            ("names_mismatch", ["class_names has 2 names for num_classes 3"]),
            ("shape_mismatch", ["/train/x", "does not match [N] + feature_shape [5]"]),
            ("y_float32", ["/train/y", "dtype is float32, expected int32"]),
            ("y_two_axes", ["/train/y", "shape [16, 2], expected one dimension"]),
            ("y_int64", ["/train/y", "dtype is int64, expected int32"]),
            ("x_int8", ["/train/x", "dtype is int8, expected float32"]),
            ("rows_mismatch", ["/train/x", "has 16 samples but /train/y has 15"]),
            ("scalar_x", ["/train/x", "shape [] does not match"]),
            ("empty_train", ["/train/y", "split is empty"]),
            ("x_is_group", ["/train/x", "not a dataset"]),
            ("missing_y", ["/train/y", "missing dataset"]),
            ("version_99", ["layout_version is 99"]),
            ("version_3", ["layout_version is 3", "reads versions 1 to 2", "a newer cgt wrote the file"]),
            ("uint8_no_normalization", ["/train/x", "is uint8 but the file has no attribute 'normalization_offset'"]),
            ("uint8_version_1", ["/train/x", "dtype is uint8, expected float32 (layout_version 1"]),
            ("uint8_zero_scale", ["/train/x", "scales finite and positive"]),
            ("uint8_short_offset", ["/train/x", "'normalization_offset' has 3 values for 4 channels"]),
            ("int16_version_2", ["/train/x", "dtype is int16, expected float32 or uint8"]),
            ("no_version", ["missing file attribute 'layout_version'"]),
            ("one_class", ["num_classes is 1, needs at least 2"]),
            ("zero_classes", ["num_classes is 0"]),
            ("negative_classes", ["num_classes is -5"]),
            ("zero_feature", ["feature_shape [0] must be non-empty and positive"]),
            ("negative_feature", ["feature_shape [-4]"]),
            ("text_feature_shape", ["'feature_shape' is string"]),
            ("integer_names", ["'class_names' is int64, not a string"]),
            ("long_name", ["class 0 is 1000000 bytes long"]),
            ("control_name", ["class 0 holds a control character"]),
            ("validation_shape", ["/validation/x", "does not match"]),
            ("negative_label", ["/train/y", "label -1 at row 2"]),
            ("inf_feature", ["/train/x", "non-finite value inf at row 1"]),
            ("external_link", ["/train/x", "a link to another file"]),
            ("soft_link_loop", ["/train/x", "too many links"]),
            ("external_storage", ["/train/x", "external storage in /etc/passwd"]),
            ("virtual_dataset", ["/train/x", "a virtual dataset"]),
            ("many_dimensions", ["feature_shape has 300001 dimensions, more than 8"]),
            ("pipe", ["pipe.h5", "not a regular file"]),
            ("link_chain", ["/train/x", "is reached through /elsewhere, a link to another file"]),
            ("split_into_pipe", ["/train/x", "is reached through /train, a link to another file"]),
        ]
        for (name, parts) in datasets {
            try assertTrainAndInspectRefuse("\(corpus)/\(name).h5", parts)
        }
        for (arguments, parts) in [
            (
                ["npy", "--x", "\(corpus)/overflow.npy", "--y", "\(corpus)/labels.npy"],
                ["overflow.npy", "more data than can exist"]
            ),
            (
                ["npy", "--x", "\(corpus)/huge.npy", "--y", "\(corpus)/labels.npy"],
                ["huge.npy", "but the file only has 64"]
            ),
            (
                // The images stream, so their size is no refusal; their header is read, and
                // refused against the labels, before any of their 300 MB is unpacked.
                ["fashion-mnist", "--dir", "\(corpus)/idx_bomb"],
                ["train-labels-idx1-ubyte.gz", "holds 1 labels", "train-images-idx3-ubyte.gz holds 300 images"]
            ),
        ] {
            let out = directory.file("prepared-\(arguments[2].split(separator: "/").last!).h5")
            assertRefused(try cgt(["prepare"] + arguments + ["--out", out]), parts, "prepare \(arguments[2])")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "no output from a refused prepare")
        }
        for (name, parts) in [
            ("checkpoint_huge_tensor", ["/model/huge", "is not a tensor of the job's network"]),
            ("checkpoint_wrong_shape", ["[1099511627776, 4]", "the job's network needs"]),
            ("checkpoint_bomb_job", ["job attribute", "expands to more than"]),
        ] {
            let checkpoint = "\(corpus)/\(name).h5"
            assertRefused(
                try cgt(["eval", "--checkpoint", checkpoint, "--out", directory.file("eval-\(name)")]),
                [name + ".h5"] + parts, "eval \(name)")
            assertRefused(try cgt(["inspect", checkpoint]), [name + ".h5"] + parts, "inspect \(name)")
            XCTAssertFalse(
                FileManager.default.fileExists(atPath: directory.file("eval-\(name)")), "\(name): no eval folder")
        }
    }

    /// libhdf5 decompresses a chunk whole, into a buffer of the chunk's declared size: chunks
    /// that would not fit the memory budget are refused before a read, however little data the
    /// file holds (Corpus/make_corpus.py --huge-chunks; 64 rows in a chunk of 64 MiB, and a
    /// chunk of 2 GiB declared and never written).
    func testChunksAreBudgetedAsTheyAreDecompressed() throws {
        let corpus = try runCorpusScript("huge-chunks") { ["--huge-chunks", $0] }
        for (name, parts) in [
            ("written_chunk", ["chunks of [4194304, 4] float32 values", "needs 64.0 MiB"]),
            ("declared_chunk", ["chunks of [134217728, 4] float32 values", "needs 2.0 GiB"]),
        ] {
            let data = "\(corpus)/\(name).h5"
            let run = directory.file("run-\(name)")
            let expected = ["\(name).h5: /train/x", "memory limit of 32.0 MiB"] + parts
            assertRefused(
                try cgt(["train", try job(), "--data", data, "--out", run], memoryLimit: "32M"), expected,
                "train \(name)")
            noRunFolderContents(run, name)
            assertRefused(try cgt(["inspect", data], memoryLimit: "32M"), expected, "inspect \(name)")
        }
    }

    /// A chunk found corrupt by the thread that reads the next epoch ahead ends training with
    /// cgt's one line, and no "HDF5-DIAG" stack from libhdf5 (whose error printing is a setting
    /// of each thread). The chunk is made corrupt while the process is stopped at a fail point
    /// (`CGT_TEST_STOP_AT_READ_CHECK`): after the first epoch's read, before the read ahead of
    /// the second; its size and modification time are kept, so only the chunk differs.
    func testACorruptChunkFoundReadingAheadIsOneLine() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 8, classes: 3, train: 2048, test: 32)
        let chunk = try trainChunkLocation(of: data, index: "0")
        var before = stat()
        XCTAssertEqual(stat(data, &before), 0)
        let job = try job("model: {hidden: [8], exits: [1]}\ntraining: {epochs: 2, batch_size: 64}\n", name: "two.yaml")
        let errors = directory.file("read-ahead-errors.txt")
        XCTAssertTrue(FileManager.default.createFile(atPath: errors, contents: nil))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandRunner.cgt)
        process.arguments = ["train", job, "--data", data, "--out", directory.file("run-read-ahead"), "--quiet"]
        process.environment = ProcessInfo.processInfo.environment.merging(["CGT_TEST_STOP_AT_READ_CHECK": "2"]) { $1 }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errors))
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        let deadline = Date().addingTimeInterval(60)
        func stopped() -> Bool {
            guard let stat = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return false }
            return stat[stat.index(after: close)...].split(separator: " ").first == "T"
        }
        while process.isRunning && !stopped() && Date() < deadline { usleep(10_000) }
        XCTAssertTrue(stopped(), "the process stops itself before its read ahead")
        try damageChunk(of: data, at: chunk)
        var times = [before.st_atim, before.st_mtim]
        XCTAssertEqual(utimensat(AT_FDCWD, data, &times, 0), 0, "the modification time is the one training saw")
        kill(process.processIdentifier, SIGCONT)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        XCTAssertFalse(process.isRunning, "training ends by itself")
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 1)
        let message = try String(contentsOfFile: errors, encoding: .utf8)
        XCTAssertFalse(message.contains("HDF5-DIAG"), message)
        XCTAssertEqual(message.split(separator: "\n").count, 1, message)
        XCTAssertTrue(message.hasPrefix("cgt: error: \(data): /train/x"), message)
        XCTAssertTrue(message.contains("inflate"), message)
    }

    /// Files as other tools write them (Corpus/make_corpus.py --other-tools): LZF-compressed
    /// data reads and trains through Debian's hdf5-plugin-lzf; a filter this HDF5 has no
    /// plugin for, and a virtual dataset, are refused with what to do about them.
    func testFilesOtherToolsWriteAreReadOrExplained() throws {
        let corpus = try runCorpusScript("other-tools") { ["--other-tools", $0] }
        let plugins = "/usr/lib/x86_64-linux-gnu/hdf5/serial/plugins"
        XCTAssertTrue(
            FileManager.default.fileExists(atPath: "\(plugins)/liblzf_filter.so"),
            "launch/setup installs hdf5-plugin-lzf")

        let lzf = "\(corpus)/lzf_features.h5"
        let inspected = try cgt(["inspect", lzf])
        XCTAssertEqual(inspected.status, 0, inspected.stderr)
        XCTAssertTrue(inspected.stdout.contains("shuffle + lzf"), inspected.stdout)
        XCTAssertTrue(inspected.stdout.contains("every label and feature value checked"), inspected.stdout)
        let run = directory.file("run-lzf")
        let trained = try cgt([
            "train", try job("model: {hidden: [8], exits: [1]}\ntraining: {epochs: 2, batch_size: 16}\n"), "--data",
            lzf, "--out", run, "--quiet",
        ])
        XCTAssertEqual(trained.status, 0, trained.stderr)
        // The classes sit 2 standard deviations apart: a model that read zeros or garbage would not learn them.
        let evaluation = try XCTUnwrap(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(run)/eval.json")))
                as? [String: Any])
        XCTAssertGreaterThan(try XCTUnwrap(evaluation["accuracy"] as? Double), 0.6)

        var refusals: [(String, [String])] = [
            (
                "unregistered_filter",
                ["/train/x", "filter id 32099", "cannot decode", "HDF5_PLUGIN_PATH", "h5repack -f GZIP=4"]
            ),
            (
                "virtual_latest",
                ["/train/x", "a virtual dataset", "h5repack -l CONTI", "virtual_latest.h5 copy.h5"]
            ),
        ]
        // bzip2 is refused unless Debian's hdf5-filter-plugin is installed, which decodes it.
        if FileManager.default.fileExists(atPath: "\(plugins)/libh5bz2.so") {
            XCTAssertEqual(try cgt(["inspect", "\(corpus)/bzip2_features.h5"]).status, 0)
        } else {
            refusals.append(
                (
                    "bzip2_features",
                    [
                        "/train/x", "bzip2 (filter id 307)", "cannot decode", "install hdf5-filter-plugin (Debian)",
                        plugins,
                    ]
                ))
        }
        for (name, parts) in refusals {
            try assertTrainAndInspectRefuse("\(corpus)/\(name).h5", parts)
        }
    }

    /// Every `cgt prepare` input wrong in one way: one line naming the file (and line, column,
    /// member or sample), and no output file.
    func testWrongPrepareInputsAreRefused() throws {
        let corpus = try makeCorpus()
        func file(_ name: String) -> String { "\(corpus)/\(name)" }
        func csv(_ name: String, _ extra: [String] = []) -> [String] {
            ["csv", "--file", file(name), "--label-column", "label", "--no-stratify"] + extra
        }
        func npy(_ x: String, _ y: String = "y.npy") -> [String] {
            ["npy", "--x", file(x), "--y", file(y), "--no-stratify"]
        }
        func hsi(cube: String = "cube.npy", labels: String = "ground_truth.npy", _ extra: [String] = []) -> [String] {
            ["hsi", "--cube", file(cube), "--labels", file(labels), "--no-stratify"] + extra
        }
        let cases: [([String], [String])] = [
            (csv("ragged.csv"), ["ragged.csv", "line 3", "has 2 fields, the header has 3"]),
            (csv("not_a_number.csv"), ["line 3, column 'a'", "'abc' is not a number"]),
            (csv("nan.csv"), ["line 3, column 'a'", "not finite in float32"]),
            (csv("beyond_float32.csv"), ["line 2, column 'a'", "value 1e999 is not finite"]),
            (csv("empty.csv"), ["empty.csv", "is empty"]),
            (csv("header_only.csv"), ["header_only.csv", "no data rows"]),
            (csv("no_label_column.csv"), ["line 1", "has no column 'label'"]),
            (csv("duplicate_column.csv"), ["line 1", "column name 'a' appears twice"]),
            (csv("long_field.csv"), ["line 2, column 'a'", "(2000000 bytes) is not a number"]),
            (csv("binary.csv"), ["binary.csv", "line 1, column 1", "is not UTF-8 text"]),
            (csv("open_quote.csv"), ["line 2", "quoted field is not closed"]),
            (csv("bad_utf8_label.csv"), ["line 2, column 'label'", "is not UTF-8 text"]),
            (csv("control_label.csv"), ["column 'label'", "holds a control character"]),
            (csv("good.csv", ["--drop-column", "label"]), ["'label' is the label column and cannot be dropped"]),
            (npy("x_nan.npy"), ["x_nan.npy", "sample 0, feature 0 is nan"]),
            (npy("x.npy") + ["--storage", "uint8"], ["x.npy", "not an integer in 0...255", "--storage float32"]),
            (npy("x_object.npy"), ["x_object.npy", "dtype '|O' is not supported"]),
            (npy("x_complex.npy"), ["x_complex.npy", "dtype '<c8' is not supported"]),
            (npy("x_scalar.npy"), ["x_scalar.npy", "shape [], expected [samples, features...]"]),
            (npy("x_nine_dimensions.npy"), ["x_nine_dimensions.npy", "9 dimensions, more than 8"]),
            (npy("x_text.npy"), ["x_text.npy", "dtype '<U1' is not supported"]),
            (npy("x_truncated.npy"), ["x_truncated.npy", "needs 480 bytes of data but the file only has"]),
            (npy("x_bad_magic.npy"), ["x_bad_magic.npy", "not a .npy file"]),
            (npy("x_long_header.npy"), ["x_long_header.npy", "bad .npy header"]),
            (npy("x_header_length_lie.npy"), ["x_header_length_lie.npy", "header claims 2147483648 bytes"]),
            (npy("x_code_in_header.npy"), ["x_code_in_header.npy", "bad .npy header"]),
            (npy("x_negative_shape.npy"), ["x_negative_shape.npy", "not a non-negative integer"]),
            (npy("x_deep_shape.npy"), ["x_deep_shape.npy", "bad .npy header"]),
            (npy("x.npy", "y_fraction.npy"), ["y_fraction.npy", "element 0 is 0.5, not an integer label"]),
            (npy("x.npy", "y_nan.npy"), ["y_nan.npy", "element 4 is nan"]),
            (npy("x.npy", "y_two_columns.npy"), ["y_two_columns.npy", "shape [30, 2], expected [samples]"]),
            (npy("x.npy", "y_short.npy"), ["y_short.npy", "holds 20 labels but X"]),
            (npy("not_zip.npz:x", "not_zip.npz:y"), ["not_zip.npz", "not a zip (.npz) archive"]),
            (npy("truncated.npz:x", "truncated.npz:y"), ["truncated.npz", "not a zip (.npz) archive"]),
            (npy("lying_sizes.npz:x", "lying_sizes.npz:y"), ["lying_sizes.npz", "x.npy", "sizes differ"]),
            (npy("bzip2.npz:x", "bzip2.npz:y"), ["bzip2.npz", "compression method 12"]),
            (npy("path_in_name.npz:x", "path_in_name.npz:y"), ["path_in_name.npz", "has no array 'x'"]),
            (npy("good.npz:z", "good.npz:y"), ["good.npz", "has no array 'z' (it holds x, y)"]),
            (npy("deflate_bomb.npz:x", "deflate_bomb.npz:y"), ["deflate_bomb.npz", "x.npy", "needs 1600000000 bytes"]),
            (hsi(labels: "ground_truth_9x10.npy"), ["ground_truth_9x10.npy", "9 x 10 pixels but the cube"]),
            (hsi(cube: "cube_2d.npy"), ["cube_2d.npy", "expected three axes [height, width, bands]"]),
            (hsi(labels: "ground_truth_unlabelled.npy", ["--ignore-label", "0"]), ["no labelled pixels left"]),
            (
                hsi(["--class-names", file("two_names.txt")]),
                ["two_names.txt", "names 2 classes but the labels hold 3"]
            ),
            (hsi(["--class-names", file("control_names.txt")]), ["control_names.txt", "holds a control character"]),
            (hsi(["--class-names", file("duplicate_names.txt")]), ["duplicate_names.txt", "given to two classes"]),
            (["fashion-mnist", "--dir", file("idx_bad_magic")], ["train-images-idx3-ubyte.gz", "not an IDX file"]),
            (["fashion-mnist", "--dir", file("idx_count_mismatch")], ["holds 3 labels but", "holds 4 images"]),
            (["fashion-mnist", "--dir", file("idx_truncated")], ["train-images-idx3-ubyte.gz", "is truncated"]),
            (
                ["fashion-mnist", "--dir", file("idx_label_200")],
                ["train-labels-idx1-ubyte.gz", "label 200 of image 0"]
            ),
            (
                ["fashion-mnist", "--dir", file("idx_not_gzip")],
                ["train-images-idx3-ubyte.gz", "is not valid gzip data"]
            ),
            (["fashion-mnist", "--dir", file("no_such_folder")], ["train-images-idx3-ubyte.gz", "no such file"]),
        ]
        for (index, (arguments, parts)) in cases.enumerated() {
            let out = directory.file("prepared-\(index).h5")
            assertRefused(try cgt(["prepare"] + arguments + ["--out", out]), parts, "prepare \(arguments[1...2])")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "no output from a refused prepare")
        }
        // An input given as --out (directly or through a link) is refused, even with --force.
        let input = file("x.npy")
        let before = try Data(contentsOf: URL(fileURLWithPath: input))
        try FileManager.default.createSymbolicLink(atPath: file("x_link.npy"), withDestinationPath: input)
        for x in [input, file("x_link.npy")] {
            assertRefused(
                try cgt(["prepare"] + npy((x as NSString).lastPathComponent) + ["--out", input, "--force"]),
                ["x.npy", "is an input of this preparation"], "prepare onto its input")
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: input)), before, "the input is untouched")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(corpus)/PWNED"), "a .npy header is never run")
    }

    func testHostileJobAndGridFilesAreRefused() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 4, classes: 3, train: 32, test: 8)
        var bomb = ["a: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]"]
        for i in 1..<10 {
            let previous = Character(UnicodeScalar(96 + i)!)
            let next = Character(UnicodeScalar(97 + i)!)
            bomb.append("\(next): &\(next) [" + Array(repeating: "*\(previous)", count: 9).joined(separator: ",") + "]")
        }
        let cases: [(String, String, [String])] = [
            ("bomb.yaml", bomb.joined(separator: "\n") + "\n", ["expands to more than 100000 values"]),
            ("duplicate.yaml", "name: a\ntraining: {epochs: 1}\nname: b\n", ["name: duplicate key (lines 1 and 3)"]),
            (
                "deep.yaml",
                "name: " + String(repeating: "[", count: 50_000) + String(repeating: "]", count: 50_000) + "\n",
                ["nests deeper than 64"]
            ),
            ("huge.yaml", String(repeating: "# padding\n", count: 120_000), ["more than the 1048576"]),
            (
                "hash-in-scalar.yaml",
                "model: [a#, " + String(repeating: "[", count: 50_000) + String(repeating: "]", count: 50_000) + "]\n",
                ["nests deeper than 64"]
            ),
            (
                "escaped-quote.yaml",
                "x: [\"\\\"\", " + String(repeating: "[", count: 50_000) + String(repeating: "]", count: 50_000)
                    + "]\n",
                ["nests deeper than 64"]
            ),
            ("escape.yaml", "name: ../../escaped_run\n", ["name: '../../escaped_run' is not a relative folder name"]),
            (
                "huge-model.yaml", "model: {hidden: [65536, 65536, 65536, 65536, 65536], exits: [5]}\n",
                ["model: the network", "more than the memory limit"]
            ),
            ("absolute.yaml", "name: /tmp/elsewhere\n", ["name:", "not a relative folder name"]),
            ("typo.yaml", "training: {epoch: 3}\n", ["training.epoch: unknown key (did you mean 'epochs'?)"]),
            ("word-for-number.yaml", "training: {epochs: many}\n", ["training.epochs: expected a whole number"]),
            ("zero-epochs.yaml", "training: {epochs: 0}\n", ["training.epochs: must be in [1, 1000000]"]),
            (
                "huge-epochs.yaml", "training: {epochs: 99999999999999999999}\n",
                ["training.epochs: expected a whole number"]
            ),
            ("negative-lr.yaml", "optimizer: {lr: -1}\n", ["optimizer.lr: must be positive"]),
            ("nan-lr.yaml", "optimizer: {lr: .nan}\n", ["optimizer.lr: must be positive, got nan"]),
            ("tau.yaml", "eval: {tau: 2}\n", ["eval.tau: must be in (0, 1]"]),
            (
                "exit.yaml", "model: {hidden: [8], exits: [3]}\n",
                ["model.exits: the last exit must follow the last block"]
            ),
            ("no-blocks.yaml", "model: {hidden: [], exits: []}\n", ["model.hidden: needs one or more widths"]),
            (
                "batch.yaml", "training: {batch_size: 9223372036854775807}\n",
                ["training.batch_size: must be in [2, 16777216]"]
            ),
            ("negative-seed.yaml", "training: {seed: -1}\n", ["training.seed: expected a whole number from 0"]),
            ("dropout.yaml", "model: {hidden: [8], exits: [1], dropout: 1.5}\n", ["model.dropout: must be in [0, 1)"]),
            ("stall.yaml", "runtime: {stall_shutdown_seconds: -5}\n", ["runtime.stall_shutdown_seconds: must be 0"]),
            ("threads.yaml", "runtime: {blas_threads: 100000}\n", ["runtime.blas_threads: must be in [1, 1024]"]),
            ("bucket.yaml", "runtime: {bucket_kib: 0}\n", ["runtime.bucket_kib: must be in"]),
            ("method-key.yaml", "method: {name: softcgt, temperature: 2}\n", ["method.temperature: unknown key"]),
            ("method-name.yaml", "method: {name: magic}\n", ["method.name: unknown method 'magic'"]),
            ("list.yaml", "- a\n- b\n", ["a job file is a mapping of sections"]),
            ("scalar.yaml", "hello\n", ["a job file is a mapping of sections"]),
            ("tab.yaml", "model:\n\t hidden: [8]\n", ["not valid YAML", "2:1"]),
            ("eval-batch.yaml", "eval: {batch_size: 0}\n", ["eval.batch_size"]),
        ]
        for (name, text, parts) in cases {
            let file = try directory.write(text, to: name)
            let run = directory.file("run-\(name)")
            assertRefused(try cgt(["train", file, "--data", data, "--out", run]), [name] + parts, name)
            noRunFolderContents(run, name)
            if name == "bomb.yaml" || name == "duplicate.yaml" || name == "deep.yaml" {
                let hostileGrid = try directory.write(text, to: "hostile-grid-\(name)")
                assertRefused(try cgt(["grid", hostileGrid, "--list"]), [parts[0]], "grid \(name)")
            }
        }
        let binary = directory.file("binary.yaml")
        try Data([0x01, 0x02, 0xFF, 0xFE]).write(to: URL(fileURLWithPath: binary))
        let good = try job()
        let run = directory.file("run-more")
        for (arguments, parts) in [
            (["train", binary, "--data", data], ["binary.yaml", "is not UTF-8 text"]),
            (["train", directory.file("no-such-job.yaml"), "--data", data], ["no-such-job.yaml", "no such job file"]),
            (["train", good, "--data", data, "--set", "training.epochs"], ["--set", "expected key=value"]),
            (
                ["train", good, "--data", data, "--set", "training.epochs=abc"],
                ["--set: training.epochs", "(from training.epochs=abc)"]
            ),
            (["train", good, "--data", data, "--set", "nonsense.key=1"], ["--set: nonsense: unknown key"]),
            (["train", good, "--data", "/dev/zero"], ["/dev/zero", "not a regular file"]),
            (["train", good, "--data", directory.file("no-such-data.h5")], ["no-such-data.h5", "No such file"]),
        ] {
            assertRefused(try cgt(arguments + ["--out", run]), parts, arguments.joined(separator: " "))
            noRunFolderContents(run, arguments.joined(separator: " "))
        }
        // Grid files: what the grid says wrong is named in the grid file, the trial and the key.
        for (name, text, parts) in [
            (
                "unknown.yaml", "base: \(good)\nmethod: grid\nparameters: {eval.tau: {values: [0.5]}}\nbogus: 1\n",
                ["bogus: unknown key"]
            ),
            (
                "huge.yaml",
                "base: \(good)\nmethod: grid\nparameters:\n"
                    + [
                        "training.seed", "training.epochs", "eval.tau", "optimizer.lr", "training.batch_size",
                        "model.dropout",
                    ]
                    .map { "  \($0): {values: [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]}\n" }.joined(),
                ["parameters: more than 100000 combinations"]
            ),
            (
                "missing-base.yaml", "base: /no/such/job.yaml\nmethod: grid\nparameters: {eval.tau: {values: [0.5]}}\n",
                ["/no/such/job.yaml", "no such job file"]
            ),
            (
                "axis.yaml", "base: \(good)\nmethod: grid\nparameters: {nonsense.key: {values: [1]}}\n",
                ["axis.yaml: parameters of trial-000: nonsense: unknown key"]
            ),
            (
                "value.yaml", "base: \(good)\nmethod: grid\nparameters: {eval.tau: {values: [5]}}\n",
                ["value.yaml: parameters of trial-000: eval.tau: must be in (0, 1] (from eval.tau=5)"]
            ),
            (
                "empty-axis.yaml", "base: \(good)\nmethod: grid\nparameters: {eval.tau: {values: []}}\n",
                ["parameters.eval.tau.values: needs a non-empty list"]
            ),
            (
                "search.yaml", "base: \(good)\nmethod: bayes\nparameters: {eval.tau: {values: [0.5]}}\n",
                ["method: unknown search 'bayes'"]
            ),
            (
                "folder-base.yaml", "base: \(directory.path)\nmethod: grid\nparameters: {eval.tau: {values: [0.5]}}\n",
                ["not a regular file"]
            ),
        ] {
            let grid = try directory.write(text, to: "grid-\(name)")
            assertRefused(try cgt(["grid", grid, "--list"]), parts, "grid \(name)")
        }
    }

    /// `--set` values (of `cgt train` and `cgt grid`) and a grid's constraint values are read
    /// within the bounds of a job file: nesting that would overflow the parser's stack, an alias
    /// bomb and a key of many parts are refused in one line naming `--set` and the key.
    func testOverrideValuesHaveTheBoundsOfJobFiles() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 4, classes: 3, train: 32, test: 8)
        let good = try job()
        // Nine anchors, each a list of nine aliases of the one before: 9^10 values from 300 bytes.
        var bomb = ["&a [x, x, x, x, x, x, x, x, x]"]
        for i in 1..<10 {
            let previous = Character(UnicodeScalar(96 + i)!)
            let next = Character(UnicodeScalar(97 + i)!)
            bomb.append("&\(next) [" + Array(repeating: "*\(previous)", count: 9).joined(separator: ", ") + "]")
        }
        let cases: [(String, [String])] = [
            ("model.hidden=" + String(repeating: "[", count: 60_000), ["--set: model.hidden", "value nests deeper"]),
            (
                "model.hidden=" + String(repeating: "[", count: 30_000) + String(repeating: "]", count: 30_000),
                ["--set: model.hidden", "value nests deeper"]
            ),
            ("model.hidden=[" + bomb.joined(separator: ", ") + "]", ["--set: model.hidden", "expands to more than"]),
            (String(repeating: "a.", count: 30_000) + "b=1", ["--set: a.a.a", "the key has 30001 parts"]),
            ("model={hidden: [8], hidden: [9]}", ["--set: model.hidden", "duplicate key"]),
        ]
        let grid = try directory.write(
            "base: \(good)\nmethod: grid\nparameters: {eval.tau: {values: [0.5]}}\n", to: "grid-set.yaml")
        for (assignment, parts) in cases {
            let run = directory.file("run-set")
            let label = String(assignment.prefix(40))
            assertRefused(
                try cgt(["train", good, "--data", data, "--out", run, "--set", assignment]), parts, "train \(label)")
            noRunFolderContents(run, label)
            assertRefused(try cgt(["grid", grid, "--list", "--set", assignment]), parts, "grid \(label)")
        }
    }

    /// A job or grid file saved with a UTF-8 byte-order mark (as some Windows editors save
    /// them) reads as the same file without it.
    func testByteOrderMarksAreAccepted() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 4, classes: 3, train: 32, test: 8)
        let bom = "\u{FEFF}"
        let job = try directory.write(
            bom + "model:\n  hidden: [8]\n  exits: [1]\ntraining:\n  epochs: 1\n  batch_size: 4\n", to: "bom.yaml")
        let trained = try cgt(["train", job, "--data", data, "--out", directory.file("run-bom"), "--quiet"])
        XCTAssertEqual(trained.status, 0, trained.stderr)
        let grid = try directory.write(
            bom + "base: \(job)\nmethod: grid\nparameters:\n  eval.tau: {values: [0.5, 0.7]}\n", to: "bom-grid.yaml")
        let listed = try cgt(["grid", grid, "--list"])
        XCTAssertEqual(listed.status, 0, listed.stderr)
        XCTAssertTrue(listed.stdout.contains("eval.tau=0.7"), listed.stdout)
    }

    func testCommandLineSizesAreBounded() throws {
        let cases: [([String], [String])] = [
            (
                ["eval", "--checkpoint", "none.h5", "--batch-size", "1000000000000"],
                ["--batch-size must be in [1, 16777216]"]
            ),
            (
                ["eval", "--checkpoint", "none.h5", "--latency", "5", "--latency-batch", "1000000000000"],
                ["--latency-batch in [1, 16777216]"]
            ),
            (
                ["synth", "--out", directory.file("s.h5"), "--features", "1000000000000"],
                ["--features 1000000000000", "memory limit"]
            ),
            (["synth", "--out", directory.file("s.h5"), "--classes", "1000000000000"], ["--classes must be at most"]),
            (
                ["synth", "--out", directory.file("s.h5"), "--train", "9223372036854775806"],
                ["--train 9223372036854775806", "overflow"]
            ),
            (["train"], ["Missing expected argument"]),
        ]
        for (arguments, parts) in cases {
            assertRefused(try cgt(arguments), ["cgt: error:"] + parts, arguments.joined(separator: " "))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory.file("s.h5")))
        let dataFolder = directory.file("a-folder.h5")
        try FileManager.default.createDirectory(atPath: dataFolder, withIntermediateDirectories: true)
        assertRefused(
            try cgt(["train", try job(), "--data", dataFolder, "--out", directory.file("run-folder")]),
            ["a-folder.h5", "not a regular file"], "data.path is a folder")
    }

    /// The network at the evaluation's batch must fit the budget too, not only at the training batch.
    func testEvaluationBatchesAreBudgeted() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 4, classes: 3, train: 32, test: 1000)
        let wide = "model: {hidden: [65536], exits: [1]}\ntraining: {epochs: 1, batch_size: 4}\n"
        let run = directory.file("run-eval-batch")
        assertRefused(
            try cgt([
                "train", try job(wide + "eval: {batch_size: 1000}\n", name: "wide-eval.yaml"), "--data", data, "--out",
                run,
            ]),
            ["eval.batch_size", "batch of 1000", "memory limit"], "eval.batch_size")
        noRunFolderContents(run, "eval.batch_size")
        let trained = directory.file("run-wide")
        let result = try cgt([
            "train", try job(wide + "eval: {batch_size: 16}\n", name: "wide.yaml"), "--data", data, "--out", trained,
            "--quiet",
        ])
        XCTAssertEqual(result.status, 0, result.stderr)
        // The same checkpoint, as if trained with a global batch of 1000: re-estimating BatchNorm
        // would run the network on 1000 samples at once.
        let checkpoint = directory.file("wide-batch.h5")
        try FileManager.default.copyItem(atPath: "\(trained)/checkpoints/last.h5", toPath: checkpoint)
        try withOpenHDF5File(checkpoint, writable: true) { file in
            let job = try file.root.stringAttribute("job")
            XCTAssertTrue(job.contains("batch_size: 4"), job)
            try file.root.setAttribute("job", job.replacingOccurrences(of: "batch_size: 4", with: "batch_size: 1000"))
        }
        let out = directory.file("eval-wide")
        assertRefused(
            try cgt([
                "eval", "--checkpoint", checkpoint, "--data", data, "--batch-size", "16", "--bn-recalibration", "--out",
                out,
            ]),
            ["wide-batch.h5", "--bn-recalibration", "training.batch_size 1000", "memory limit"],
            "BatchNorm re-estimation")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }

    /// Paths of the wrong kind (a folder, a pipe, a dataset for a checkpoint, a file for an
    /// output folder) and values out of range: one line each, before any long work.
    func testWrongPathsAndValuesAreRefused() throws {
        let checkpoint = try trainedCheckpoint()
        let data = try Fixtures.writeDataset(
            in: directory, name: "four.h5", features: 4, classes: 3, train: 32, test: 8)
        let five = try Fixtures.writeDataset(
            in: directory, name: "five.h5", features: 5, classes: 3, train: 32, test: 8)
        let fourClasses = try Fixtures.writeDataset(
            in: directory, name: "classes.h5", features: 4, classes: 4, train: 32, test: 8)
        let pipe = directory.file("pipe.h5")
        XCTAssertEqual(mkfifo(pipe, 0o600), 0)
        let runFolder = directory.file("good-run")
        func eval(_ extra: [String]) -> [String] { ["eval", "--checkpoint", checkpoint, "--data", data] + extra }
        let cases: [([String], [String])] = [
            (["eval", "--checkpoint", data], ["four.h5", "not a cgt checkpoint"]),
            (["eval", "--checkpoint", runFolder], ["good-run", "not a regular file"]),
            (["eval", "--checkpoint", pipe], ["pipe.h5", "not a regular file"]),
            (
                ["eval", "--checkpoint", checkpoint, "--data", five],
                ["five.h5", "feature_shape [5] differs from the checkpoint's [4]"]
            ),
            (
                ["eval", "--checkpoint", checkpoint, "--data", fourClasses],
                ["classes.h5", "num_classes 4 differs from the checkpoint's 3"]
            ),
            (eval(["--out", data]), ["four.h5", "is a file, not a folder"]),
            (eval(["--out", "\(data)/sub"]), ["four.h5/sub", "a part of the path is a file"]),
            (eval(["--thresholds", "a,b"]), ["--thresholds needs comma-separated values"]),
            (eval(["--sweep", "0:1:0"]), ["--sweep needs start:stop:step"]),
            (eval(["--target-accuracy", "5"]), ["--target-accuracy must be in (0, 1]"]),
            (["inspect", runFolder], ["good-run", "not a regular file"]),
            (["inspect", pipe], ["pipe.h5", "not a regular file"]),
            (["inspect", directory.file("none.h5")], ["none.h5", "No such file"]),
            (["train", try job(), "--data", data, "--out", data], ["four.h5", "is a file, not a folder"]),
            (["train", try job(), "--data", pipe], ["pipe.h5", "not a regular file"]),
            (["report", data], ["four.h5", "no eval.json"]),
            (["table", data], ["four.h5/eval.json", "no such file"]),
            (
                [
                    "prepare", "npy", "--x", "x.npy", "--y", "y.npy", "--test-fraction", "2", "--out",
                    directory.file("p.h5"),
                ], ["--test-fraction"]
            ),
            (["synth", "--out", directory.file("s.h5"), "--classes", "1"], ["--classes >= 2"]),
            (["synth", "--out", directory.file("s.h5"), "--spread", "nan"], ["--spread must be positive"]),
        ]
        for (arguments, parts) in cases {
            assertRefused(try cgt(arguments), parts, arguments.joined(separator: " "))
        }
        XCTAssertFalse(
            FileManager.default.fileExists(atPath: "\(runFolder)/eval"), "no evaluation folder from a refused eval")
    }

    /// `cgt eval --data` on a file whose classes are not the checkpoint's (its names in another
    /// order, or other names) is refused in one line naming the first class that differs:
    /// label k must mean the class the network learned as k.
    func testEvaluationDataWithOtherClassesIsRefused() throws {
        func data(_ name: String, classNames: [String]) throws -> String {
            let path = try Fixtures.writeDataset(in: directory, name: name, features: 4, classes: 3, train: 32, test: 8)
            try withOpenHDF5File(path, writable: true) { try $0.root.setAttribute("class_names", classNames) }
            return path
        }
        let run = directory.file("run-named")
        let trained = try cgt([
            "train", try job(), "--data", try data("named.h5", classNames: ["cat", "dog", "eel"]), "--out", run,
            "--quiet",
        ])
        XCTAssertEqual(trained.status, 0, trained.stderr)
        for (name, classNames, parts) in [
            (
                "reordered", ["dog", "cat", "eel"],
                [
                    "class_names are the checkpoint's in another order",
                    "class 0 is 'dog' here and 'cat' in the checkpoint",
                ]
            ),
            (
                "renamed", ["cat", "dog", "fox"],
                ["class_names differ from the checkpoint's", "class 2 is 'fox' here and 'eel' in the checkpoint"]
            ),
        ] {
            let out = directory.file("eval-\(name)")
            assertRefused(
                try cgt([
                    "eval", "--checkpoint", "\(run)/checkpoints/last.h5", "--data",
                    try data("\(name).h5", classNames: classNames), "--out", out,
                ]), ["\(name).h5"] + parts, name)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "\(name): no evaluation folder")
        }
        // The same names in the same order evaluate.
        let same = try cgt([
            "eval", "--checkpoint", "\(run)/checkpoints/last.h5", "--data",
            try data("same.h5", classNames: ["cat", "dog", "eel"]), "--out", directory.file("eval-same"),
        ])
        XCTAssertEqual(same.status, 0, same.stderr)
    }

    /// A run that diverges (a learning rate of 1e9) stops at the step where BatchNorm's running
    /// statistics turn infinite, on every rank, with the tensor's name, and writes no checkpoint
    /// of the diverged model; a checkpoint holding a NaN is refused by eval, inspect and --resume.
    func testNonFiniteModelStateIsNeverTrainedOnEvaluatedOrResumed() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 6, classes: 3, train: 128, test: 32, spread: 2)
        let job = try job(
            "model: {hidden: [16, 16], exits: [1, 2], batchnorm: true}\ntraining: {epochs: 2, batch_size: 32}\n",
            name: "diverging.yaml")
        for ranks in [1, 2] {
            let run = directory.file("run-diverged-\(ranks)")
            let arguments = ["train", job, "--data", data, "--out", run, "--set", "optimizer.lr=1e9", "--quiet"]
            let result = ranks == 1 ? try cgt(arguments) : try CommandRunner.mpirun(ranks: 2, arguments)
            XCTAssertEqual(result.status, 1, "\(ranks) ranks: \(result.stderr)")
            let errors = result.stderr.split(separator: "\n").filter { $0.contains("error:") }
            XCTAssertEqual(errors.count, 1, "\(ranks) ranks, one line: \(result.stderr)")
            XCTAssertTrue(
                errors.first?.contains(".bn.running_var holds a non-finite value after step") == true, result.stderr)
            XCTAssertTrue(errors.first?.contains("optimizer.lr") == true, result.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: "\(run)/checkpoints/last.h5"), "\(ranks) ranks")
        }
        // A healthy checkpoint, then one NaN written into a weight of it.
        let run = directory.file("run-poisoned")
        let trained = try cgt(["train", job, "--data", data, "--out", run, "--quiet"])
        XCTAssertEqual(trained.status, 0, trained.stderr)
        let last = "\(run)/checkpoints/last.h5"
        try withOpenHDF5File(last, writable: true) { file in
            let weight = try file.root.openDataset("model/blocks/1/linear/weight")
            var values = try weight.readAll(as: Float.self)
            values[7] = .nan
            try values.withUnsafeBufferPointer { try weight.write($0) }
        }
        let refusals = [
            ("eval", ["eval", "--checkpoint", last, "--data", data, "--out", directory.file("eval-poisoned")]),
            ("inspect", ["inspect", last]),
            ("resume", ["train", job, "--data", data, "--out", run, "--resume", "--set", "training.epochs=3"]),
        ]
        for (label, arguments) in refusals {
            assertRefused(
                try cgt(arguments), ["/model/blocks/1/linear/weight", "non-finite value (nan at index 7)"], label)
        }
    }

    /// A batch larger than the training split trains one step of the whole split per epoch,
    /// and says so in one warning line.
    func testABatchLargerThanTheSplitIsWarnedAbout() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 4, classes: 3, train: 96, test: 8)
        let job = try job(
            "model: {hidden: [8], exits: [1]}\ntraining: {epochs: 1, batch_size: 100000}\n", name: "big.yaml")
        let result = try cgt(["train", job, "--data", data, "--out", directory.file("run-big-batch")])
        XCTAssertEqual(result.status, 0, result.stderr)
        let warnings = result.stdout.split(separator: "\n").filter { $0.hasPrefix("warning:") }
        XCTAssertEqual(
            warnings,
            [
                "warning: training.batch_size 100000 is larger than the training split (96 samples): each epoch is one step of 96"
            ], result.stdout)
    }

    /// An output path that is a link is replaced by the new file; the link's target stays as it was.
    func testWritesDoNotFollowLinks() throws {
        let victim = try directory.write("precious\n", to: "victim.txt")
        let out = directory.file("linked.h5")
        try FileManager.default.createSymbolicLink(atPath: out, withDestinationPath: victim)
        let result = try cgt(["synth", "--out", out, "--train", "16", "--test", "8", "--features", "4", "--force"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(
            try String(contentsOfFile: victim, encoding: .utf8), "precious\n", "the link's target is untouched")
        let attributes = try FileManager.default.attributesOfItem(atPath: out)
        XCTAssertEqual(attributes[.type] as? FileAttributeType, .typeRegular, "the output is a file of its own now")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter {
            $0.contains(".tmp-")
        }
        XCTAssertEqual(leftovers, [])
    }

    /// A signal (Ctrl-C, SIGTERM) while `cgt synth` or `cgt prepare` writes its file stops the
    /// write between chunks: one line, status 128 + the signal's number as for a process the
    /// signal ended, no output and no temporary file. The signal comes from the process itself
    /// at its first check (`CGT_TEST_SIGNAL_AT_CHECK`), after the first block is written.
    func testASignalStopsAWriteCleanly() throws {
        let synth = directory.file("stopped.h5")
        assertStopped(
            try cgt(
                ["synth", "--out", synth, "--train", "20000", "--features", "64"],
                environment: ["CGT_TEST_SIGNAL_AT_CHECK": "TERM"]), synth, signal: "SIGTERM", status: 143)
        let x = directory.file("x.npy")
        let y = directory.file("y.npy")
        try RawFiles.write(
            RawFiles.npy(descr: "<f4", shape: [4000, 16], data: RawFiles.bytes(Fixtures.normals(64_000, seed: 1))),
            to: x)
        try RawFiles.write(
            RawFiles.npy(descr: "<i8", shape: [4000], data: RawFiles.bytes((0..<4000).map { Int64($0 % 3) })), to: y)
        let prepared = directory.file("prepared-stopped.h5")
        assertStopped(
            try cgt(
                ["prepare", "npy", "--x", x, "--y", y, "--out", prepared],
                environment: ["CGT_TEST_SIGNAL_AT_CHECK": "INT"]),
            prepared, signal: "SIGINT", status: 130)
    }

    private func assertStopped(
        _ result: CommandResult, _ out: String, signal: String, status: Int32, file: StaticString = #filePath,
        line: UInt = #line
    ) {
        XCTAssertEqual(result.status, status, result.stderr, file: file, line: line)
        XCTAssertEqual(
            result.stderr, "cgt: error: \(out): stopped by \(signal) while writing it; nothing was written\n",
            file: file, line: line)
        let name = (out as NSString).lastPathComponent
        let left = directory.contents().filter { $0.hasPrefix(name) }
        XCTAssertEqual(left, [], "no output and no temporary file", file: file, line: line)
    }

    /// A writer killed outright (SIGKILL) leaves its temporary file; the next write of the same
    /// file removes it, and leaves the temporary files of writers still running and of other files.
    func testTheNextWriteRemovesLeftoversOfKilledWriters() throws {
        let out = directory.file("synth.h5")
        // No process has a number above the kernel's pid_max (at most 2^22).
        let gone = "\(out).tmp-99999999-1f2e3d"
        let running = "\(out).tmp-\(getpid())-4c5b6a"
        let other = directory.file("other.h5.tmp-99999999-1f2e3d")
        for leftover in [gone, running, other] { try Data("partial".utf8).write(to: URL(fileURLWithPath: leftover)) }
        let result = try cgt(["synth", "--out", out, "--train", "64", "--test", "16", "--features", "4"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: gone), "a killed writer's file is removed")
        XCTAssertTrue(FileManager.default.fileExists(atPath: running), "a running writer's file stays")
        XCTAssertTrue(FileManager.default.fileExists(atPath: other), "another file's leftovers stay")
    }

    /// A run killed while it appended to metrics.jsonl leaves a last line cut short: `cgt report`
    /// and `cgt table` leave it out with one warning naming the file and line, and a resumed
    /// run drops it. Any other line that is not a record is refused, naming file and line.
    func testALastMetricsLineCutShortIsLeftOut() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 4, classes: 3, train: 32, test: 8)
        let job = try job(
            "model: {hidden: [8], exits: [1]}\ntraining: {epochs: 2, batch_size: 8, checkpoint_every: 1}\n",
            name: "metrics.yaml")
        let run = directory.file("run-metrics")
        XCTAssertEqual(try cgt(["train", job, "--data", data, "--out", run, "--quiet"]).status, 0)
        let metrics = "\(run)/metrics.jsonl"
        let whole = try Data(contentsOf: URL(fileURLWithPath: metrics))
        let torn = whole + Data(#"{"epoch":3,"global_step":12,"lo"#.utf8)
        try torn.write(to: URL(fileURLWithPath: metrics))
        for arguments in [["report", run, "--no-eval"], ["table", run]] {
            let result = try cgt(arguments)
            XCTAssertEqual(result.status, 0, "\(arguments[0]): \(result.stderr)")
            XCTAssertEqual(
                result.stderr,
                "cgt: warning: \(metrics): line 3 is cut short (a run killed while writing it); left out\n",
                arguments[0])
        }
        let resumed = try cgt([
            "train", job, "--data", data, "--out", run, "--quiet", "--resume", "--set", "training.epochs=3",
        ])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        let lines = try String(contentsOfFile: metrics, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 3, "the cut line is dropped and epoch 3 written whole: \(lines)")
        XCTAssertTrue(lines.allSatisfy { $0.hasPrefix("{") && $0.hasSuffix("}") }, "\(lines)")

        try (Data("not json\n".utf8) + whole).write(to: URL(fileURLWithPath: metrics))
        for arguments in [["report", run, "--no-eval"], ["table", run]] {
            assertRefused(
                try cgt(arguments), ["\(metrics): line 1: not an epoch record", "not valid JSON"], arguments[0])
        }
    }

    /// A disk full at a run's start (a small tmpfs, as `DiskFullTests`): one line naming the
    /// file and the system's reason, and no half-made run folder (job.yaml, .lock) left; a disk
    /// that fills at the first epoch's metrics line names metrics.jsonl.
    func testAFullDiskAtTheStartOfARunIsNamedAndLeavesNoRunFolder() throws {
        let mountPoint = directory.file("small")
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        guard try CommandRunner.run("/bin/mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", mountPoint]).status == 0
        else {
            throw XCTSkip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)")
        }
        defer { _ = try? CommandRunner.run("/bin/umount", [mountPoint]) }
        let data = try Fixtures.writeDataset(in: directory, features: 4, classes: 3, train: 32, test: 8)
        let job = try job()
        // Every page taken (dd stops at ENOSPC).
        _ = try CommandRunner.run("/bin/dd", ["if=/dev/zero", "of=\(mountPoint)/fill", "bs=4096"])
        let run = "\(mountPoint)/runs/first"
        assertRefused(
            try cgt(["train", job, "--data", data, "--out", run, "--quiet"]),
            ["\(run)/job.yaml", "No space left on device"], "full disk")
        XCTAssertEqual(
            try FileManager.default.contentsOfDirectory(atPath: mountPoint), ["fill"],
            "the run's folders are removed, runs/ with them")
        // One page left: job.yaml takes it, and the first epoch's metrics line finds none.
        _ = try CommandRunner.run("/bin/dd", ["if=/dev/zero", "of=\(mountPoint)/fill", "bs=4096", "count=15"])
        assertRefused(
            try cgt(["train", job, "--data", data, "--out", run, "--quiet"]),
            ["\(run)/metrics.jsonl", "No space left on device"], "full disk at the first metrics line")
    }

    /// A second trainer on a folder in use is refused; crash leftovers are cleaned, and a lost
    /// last.h5 does not stop --resume; a fresh run refuses a folder holding epoch files.
    func testRunFoldersAreLockedAndRecoverFromCrashLeftovers() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 4, classes: 3, train: 2048, test: 8)
        let long = try job(
            "model: {hidden: [64, 64], exits: [1, 2]}\ntraining: {epochs: 400, batch_size: 4, checkpoint_every: 1000}\n",
            name: "long.yaml")
        let run = directory.file("locked")
        let first = Process()
        first.executableURL = URL(fileURLWithPath: CommandRunner.cgt)
        first.arguments = ["train", long, "--data", data, "--out", run, "--quiet"]
        first.standardOutput = FileHandle.nullDevice
        first.standardError = FileHandle.nullDevice
        try first.run()
        defer { if first.isRunning { first.terminate() } }
        let deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: "\(run)/job.yaml") && Date() < deadline { usleep(50_000) }
        let second = try cgt(["train", long, "--data", data, "--out", run])
        assertRefused(second, [run, "in use by another cgt process"], "second trainer")
        first.terminate()
        first.waitUntilExit()

        let short = try job(
            "model: {hidden: [8], exits: [1]}\ntraining: {epochs: 2, batch_size: 64, checkpoint_every: 1}\n",
            name: "short.yaml")
        let crashed = directory.file("crashed")
        XCTAssertEqual(try cgt(["train", short, "--data", data, "--out", crashed, "--quiet"]).status, 0)
        // What a kill leaves: a partial temporary file, and no last.h5 after an epoch file's rename.
        let partial = "\(crashed)/checkpoints/epoch-0003.h5.tmp-4242-abc"
        try Data("partial".utf8).write(to: URL(fileURLWithPath: partial))
        try FileManager.default.removeItem(atPath: "\(crashed)/checkpoints/last.h5")
        assertRefused(
            try cgt(["train", short, "--data", data, "--out", crashed]), ["--resume"], "fresh run on epoch files")
        let resumed = try cgt([
            "train", short, "--data", data, "--out", crashed, "--resume", "--set", "training.epochs=3",
        ])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stdout.contains("epoch-0002.h5"), "resumed from the newest epoch file: \(resumed.stdout)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: partial), "leftovers are removed")
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(crashed)/checkpoints/epoch-0003.h5"))
    }
}

/// Training killed with SIGKILL at random moments, checkpoints written every epoch: every
/// checkpoint file left must open as a whole checkpoint, `last.h5` must be one of them, and
/// `--resume` must go on each time.
final class CrashSafetyTests: XCTestCase {
    let directory = TemporaryDirectory("crash")

    /// The checkpoint files in `folder` (not temporary ones), each checked to open with its model.
    private func checkCheckpoints(_ folder: String, kill: Int) throws -> [String] {
        guard FileManager.default.fileExists(atPath: folder) else { return [] }
        let names = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".h5") }
        for name in names {
            let path = "\(folder)/\(name)"
            XCTAssertNoThrow(
                try withOpenHDF5File(path) { file in
                    XCTAssertEqual(
                        try file.root.stringAttribute("kind"), "cgt-checkpoint", "\(name) after kill \(kill)")
                    XCTAssertTrue(
                        file.root.contains("model") && file.root.contains("optimizer"), "\(name) after kill \(kill)")
                }, "\(name) after kill \(kill) does not open")
        }
        if names.contains("last.h5") {
            let inode = { (path: String) in
                (try FileManager.default.attributesOfItem(atPath: path)[.systemFileNumber] as? UInt64)
            }
            let last = try inode("\(folder)/last.h5")
            let epochs = try names.filter { $0.hasPrefix("epoch-") }.map { try inode("\(folder)/\($0)") }
            XCTAssertTrue(epochs.contains(last), "last.h5 is one of the epoch files after kill \(kill)")
        }
        return names
    }

    func testKilledTrainingLeavesOnlyCompleteCheckpoints() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 8, classes: 3, train: 512, test: 32)
        let job = try directory.write(
            "model: {hidden: [256, 256], exits: [1, 2]}\ntraining: {epochs: 100000, batch_size: 128, checkpoint_every: 1}\n",
            to: "job.yaml")
        let run = directory.file("run")
        let checkpoints = "\(run)/checkpoints"
        var generator = SystemRandomNumberGenerator()
        var killsWithCheckpoints = 0
        var killsDuringWrites = 0
        for round in 1...20 {
            let hasCheckpoint =
                (try? FileManager.default.contentsOfDirectory(atPath: checkpoints))?.contains { $0.hasSuffix(".h5") }
                ?? false
            let process = Process()
            process.executableURL = URL(fileURLWithPath: CommandRunner.cgt)
            process.arguments =
                ["train", job, "--data", data, "--out", run, "--quiet"] + (hasCheckpoint ? ["--resume"] : [])
            process.standardOutput = FileHandle.nullDevice
            let errors = Pipe()
            process.standardError = errors
            try process.run()
            if !hasCheckpoint {
                // The first run is killed only after its first checkpoint, so every kill tests one.
                let deadline = Date().addingTimeInterval(60)
                while process.isRunning && Date() < deadline
                    && !((try? FileManager.default.contentsOfDirectory(atPath: checkpoints))?.contains("last.h5")
                        ?? false)
                {
                    usleep(10_000)
                }
            }
            usleep(UInt32.random(in: 0...800_000, using: &generator))
            XCTAssertTrue(
                process.isRunning,
                "training stopped by itself before kill \(round): \(String(decoding: errors.fileHandleForReading.availableData, as: UTF8.self))"
            )
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            if try !checkCheckpoints(checkpoints, kill: round).isEmpty { killsWithCheckpoints += 1 }
            let names = (try? FileManager.default.contentsOfDirectory(atPath: checkpoints)) ?? []
            if names.contains(where: { $0.contains(".tmp-") }) { killsDuringWrites += 1 }
        }
        XCTAssertEqual(killsWithCheckpoints, 20, "once written, a whole checkpoint survives every kill")
        print("crash safety: 20 kills, \(killsDuringWrites) of them inside a checkpoint write")
        // After the last kill, a resumed run finishes one more epoch and leaves no temporary file.
        let files = try FileManager.default.contentsOfDirectory(atPath: checkpoints).filter {
            $0.hasPrefix("epoch-") && $0.hasSuffix(".h5")
        }
        let last =
            try files.map { name in try withOpenHDF5File("\(checkpoints)/\(name)") { try $0.root.intAttribute("epoch") }
            }.max() ?? 0
        let resumed = try CommandRunner.cgt(
            ["train", job, "--data", data, "--out", run, "--resume", "--quiet", "--set", "training.epochs=\(last + 1)"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        let left = try FileManager.default.contentsOfDirectory(atPath: checkpoints).filter { $0.contains(".tmp-") }
        XCTAssertEqual(left, [], "temporary files of killed writers are removed")
        _ = try checkCheckpoints(checkpoints, kill: 21)
    }
}

/// A rank that stops answering (SIGSTOP, as a hung node) ends the job after
/// `runtime.stall_shutdown_seconds`, with a warning first and every rank stopped; the
/// BatchNorm synchronisation is watched like the gradient all-reduce.
final class StallShutdownTests: XCTestCase {
    let directory = TemporaryDirectory("stall")

    func testAStoppedRankEndsTheJob() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 8, classes: 3, train: 2048, test: 32)
        let job = try directory.write(
            """
            model: {hidden: [64, 64], exits: [1, 2]}
            training: {epochs: 100000, batch_size: 32, checkpoint_every: 1000, sync_batchnorm: true}
            runtime: {stall_warning_seconds: 1, stall_shutdown_seconds: 4}
            """, to: "job.yaml")
        let run = directory.file("run")
        let errors = try stopOneRank(
            ["train", job, "--data", data, "--out", run, "--quiet"],
            once: { _ in FileManager.default.fileExists(atPath: "\(run)/job.yaml") })
        XCTAssertTrue(errors.contains("at step"), errors)
        XCTAssertTrue(errors.contains("ending the job; resume from the last checkpoint"), errors)
    }

    /// `cgt eval` on two ranks: a rank stopped while it evaluates its share leaves the other
    /// waiting in the evaluation's sum or gather, which the checkpoint job's limits end the same way.
    func testAStoppedRankEndsAnEvaluation() throws {
        let data = try Fixtures.writeDataset(
            in: directory, name: "large-test.h5", features: 64, train: 64, test: 100_000)
        let job = try directory.write(
            """
            model: {hidden: [512, 512], exits: [1, 2]}
            training: {epochs: 1, batch_size: 32}
            runtime: {stall_warning_seconds: 1, stall_shutdown_seconds: 4}
            """, to: "eval-job.yaml")
        let run = directory.file("eval-run")
        XCTAssertEqual(try CommandRunner.cgt(["train", job, "--data", data, "--out", run, "--quiet"]).status, 0)
        // The evaluation of one rank's share is over in a fraction of a second, too short a
        // window for a SIGSTOP from outside to land in it every time: the second rank stops
        // itself as it enters the evaluation's first collective (a fail point of the watch).
        let errors = try stopOneRank(
            ["eval", "--checkpoint", "\(run)/checkpoints/last.h5", "--out", directory.file("eval-out")], once: nil)
        XCTAssertTrue(errors.contains("s in the evaluation's"), errors)
        XCTAssertFalse(errors.contains("resume"), "an evaluation has nothing to resume: \(errors)")
    }

    /// Starts `arguments` on two ranks, stops the second with SIGSTOP once `ready(pid)` holds
    /// (nil: the rank stops itself in its first collective outside training, `CGT_TEST_STOP_RANK`),
    /// and requires the job to end by itself, after the shutdown limit; returns its stderr.
    private func stopOneRank(
        _ arguments: [String], once ready: ((Int32) -> Bool)?, file: StaticString = #filePath, line: UInt = #line
    ) throws -> String {
        let stderr = directory.file("err-\(arguments[0]).txt")
        let mpirun = try CommandRunner.startMPI(
            ranks: 2, arguments, stdout: directory.file("out-\(arguments[0]).txt"), stderr: stderr,
            environment: ready == nil ? ["CGT_TEST_STOP_RANK": "1"] : [:])
        defer { if mpirun.isRunning { mpirun.terminate() } }
        var deadline = Date().addingTimeInterval(60)
        var ranks: [Int32] = []
        var stoppedAt = Date()
        if let ready {
            while Date() < deadline {
                ranks = CommandRunner.children(of: mpirun.processIdentifier)
                if ranks.count == 2, ready(ranks[1]) { break }
                usleep(20_000)
            }
            usleep(300_000)
            XCTAssertEqual(ranks.count, 2, "two ranks under mpirun", file: file, line: line)
            guard let stopped = ranks.last else { return "" }
            kill(stopped, SIGSTOP)
            stoppedAt = Date()
        }
        deadline = Date().addingTimeInterval(ready == nil ? 100 : 40)
        while mpirun.isRunning && Date() < deadline {
            if ranks.isEmpty { ranks = CommandRunner.children(of: mpirun.processIdentifier) }
            usleep(50_000)
        }
        let running = mpirun.isRunning
        for pid in ranks { kill(pid, SIGKILL) }
        XCTAssertFalse(running, "the job ended by itself", file: file, line: line)
        mpirun.waitUntilExit()
        XCTAssertNotEqual(mpirun.terminationStatus, 0, file: file, line: line)
        XCTAssertGreaterThan(
            Date().timeIntervalSince(stoppedAt), 3.5, "not before stall_shutdown_seconds", file: file, line: line)
        let errors = try String(contentsOfFile: stderr, encoding: .utf8)
        XCTAssertTrue(errors.contains("warning: waited"), errors, file: file, line: line)
        XCTAssertTrue(errors.contains("more than runtime.stall_shutdown_seconds"), errors, file: file, line: line)
        return errors
    }
}

/// The disk fills up during a checkpoint write (a small tmpfs): one line naming the file and
/// the reason, status 1, the previous checkpoint whole, and no temporary file left.
final class DiskFullTests: XCTestCase {
    let directory = TemporaryDirectory("disk-full")

    func testAFullDiskEndsTrainingCleanly() throws {
        let mountPoint = directory.file("small")
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        // Room for two checkpoints of this model (about 290 KB each) and the run's small files.
        guard try CommandRunner.run("/bin/mount", ["-t", "tmpfs", "-o", "size=700k", "tmpfs", mountPoint]).status == 0
        else {
            throw XCTSkip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)")
        }
        defer { _ = try? CommandRunner.run("/bin/umount", [mountPoint]) }
        let data = try Fixtures.writeDataset(in: directory, features: 200, classes: 16, train: 256, test: 32)
        let job = try directory.write(
            "model: {hidden: [64, 64], exits: [1, 2]}\ntraining: {epochs: 5, batch_size: 64, checkpoint_every: 1}\n",
            to: "job.yaml")
        let run = "\(mountPoint)/run"
        let result = try CommandRunner.cgt(["train", job, "--data", data, "--out", run, "--quiet"])
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("checkpoints/epoch-0003.h5"), result.stderr)
        XCTAssertTrue(result.stderr.contains("No space left on device"), result.stderr)
        let names = try FileManager.default.contentsOfDirectory(atPath: "\(run)/checkpoints").sorted()
        XCTAssertEqual(names, ["epoch-0001.h5", "epoch-0002.h5", "last.h5"], "no temporary file left")
        XCTAssertEqual(try withOpenHDF5File("\(run)/checkpoints/last.h5") { try $0.root.intAttribute("epoch") }, 2)
    }
}

/// The output folder becomes read-only during training (as a quota or an administrator
/// may make it): one line naming the file and the reason, status 1, the last checkpoint whole.
final class ReadOnlyFolderTests: XCTestCase {
    let directory = TemporaryDirectory("read-only")

    func testAFolderThatBecomesReadOnlyEndsTrainingCleanly() throws {
        // Root writes into read-only folders; the trainer runs as nobody then.
        let asOtherUser = getuid() == 0
        guard !asOtherUser || FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else {
            throw XCTSkip("running as root without setpriv to drop privileges")
        }
        XCTAssertEqual(chmod(directory.path, 0o777), 0)
        if asOtherUser {
            let probe = try CommandRunner.run(
                "/usr/bin/setpriv",
                [
                    "--reuid=65534", "--regid=65534", "--clear-groups", "/bin/sh", "-c",
                    "test -x \"$0\" && test -w \"$1\"", CommandRunner.cgt, directory.path,
                ])
            guard probe.status == 0 else {
                throw XCTSkip("user nobody cannot run \(CommandRunner.cgt) or write \(directory.path)")
            }
        }
        let data = try Fixtures.writeDataset(in: directory, features: 8, classes: 3, train: 2048, test: 32)
        let job = try directory.write(
            "model: {hidden: [64, 64], exits: [1, 2]}\ntraining: {epochs: 100000, batch_size: 32, checkpoint_every: 1}\n",
            to: "job.yaml")
        let run = directory.file("run")
        let process = Process()
        let trainer = [CommandRunner.cgt, "train", job, "--data", data, "--out", run, "--quiet"]
        process.executableURL = URL(fileURLWithPath: asOtherUser ? "/usr/bin/setpriv" : CommandRunner.cgt)
        process.arguments =
            asOtherUser
            ? ["--reuid=65534", "--regid=65534", "--clear-groups"] + trainer : Array(trainer.dropFirst())
        process.standardOutput = FileHandle.nullDevice
        let errors = directory.file("err.txt")
        XCTAssertTrue(FileManager.default.createFile(atPath: errors, contents: nil))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errors))
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        let checkpoints = "\(run)/checkpoints"
        var deadline = Date().addingTimeInterval(60)
        // Once last.h5 follows epoch 2 (the link comes after the epoch file), the folder turns read-only.
        let inode = { (name: String) in
            (try? FileManager.default.attributesOfItem(atPath: "\(checkpoints)/\(name)"))?[.systemFileNumber] as? UInt64
        }
        while (inode("epoch-0002.h5") == nil || inode("last.h5") != inode("epoch-0002.h5")) && Date() < deadline {
            usleep(2_000)
        }
        XCTAssertEqual(chmod(checkpoints, 0o555), 0)
        XCTAssertEqual(chmod(run, 0o555), 0)
        defer {
            chmod(run, 0o755)
            chmod(checkpoints, 0o755)
        }
        deadline = Date().addingTimeInterval(60)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        XCTAssertFalse(process.isRunning, "training ends at its next checkpoint")
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 1)
        let message = try String(contentsOfFile: errors, encoding: .utf8)
        XCTAssertEqual(message.split(separator: "\n").count, 1, message)
        XCTAssertTrue(message.contains("checkpoints/epoch-"), message)
        XCTAssertTrue(message.contains("Permission denied"), message)
        XCTAssertFalse(message.contains(".tmp-"), "the message names the checkpoint, not its temporary file")
        print("read-only folder: \(message)", terminator: "")
        let names = try FileManager.default.contentsOfDirectory(atPath: checkpoints)
        XCTAssertFalse(names.contains { $0.contains(".tmp-") }, "no temporary file left: \(names)")
        let newest = names.filter { $0.hasPrefix("epoch-") }.sorted().last
        let newestEpoch = try withOpenHDF5File("\(checkpoints)/\(newest ?? "")") { try $0.root.intAttribute("epoch") }
        XCTAssertEqual(
            try withOpenHDF5File("\(checkpoints)/last.h5") { try $0.root.intAttribute("epoch") }, newestEpoch,
            "last.h5 is the newest whole checkpoint")
    }
}
