import ArgumentParser
import CGTCheckpoint
import CGTData
import CGTExperiments
import CGTFiles
import CGTHDF5
import CGTJob
import CGTTraining
import Foundation

struct PrepareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prepare",
        abstract: "Turn raw data (IDX, NumPy, hyperspectral cubes, CSV) into cgt's HDF5 dataset layout.",
        discussion: """
            The file gets train and test splits (and validation with --validation-fraction), the normalisation applied and its \
            constants, class names and counts, and provenance: source files with SHA-256, the command line, cgt version and \
            time. An existing --out is refused unless --force. Layout and attributes: hdf5_data/README.md.
            """,
        subcommands: [PrepareFashionMNIST.self, PrepareHSI.self, PrepareNPY.self, PrepareCSV.self])
}

/// Where the prepared file goes and how it stores the features; shared by every `prepare` subcommand.
struct PrepareOutputOptions: ParsableArguments {
    @Option(help: "The HDF5 file to write.")
    var out: String

    @Option(
        help: ArgumentHelp(
            "float32: features stored normalised; uint8: the source's byte values stored, a quarter of the size, and normalised by cgt's reader when it reads them (every value must be an integer in 0-255). Default: uint8 for fashion-mnist, float32 for the others.",
            valueName: "float32|uint8"))
    var storage: FeatureStorage?

    @Option(
        help:
            "gzip: shuffle + deflate level 4 on every chunk; none: chunks stored uncompressed (larger, no inflate when read)."
    )
    var compression = DatasetCompression.gzip

    @Flag(help: "Replace --out if it exists (atomically: the old file stays until the new one is complete).")
    var force = false

    /// Refuses an existing output, prepares, writes atomically and reports; every failure is one line.
    func write(_ prepare: () throws -> PreparedDataset) throws {
        try write { () throws -> DatasetContent in try prepare().content }
    }

    /// Refuses an existing output, prepares, writes atomically and reports; every failure is one line.
    func write(_ prepare: () throws -> DatasetContent) throws {
        try reportingFailures {
            if !force && FileManager.default.fileExists(atPath: out) {
                throw DatasetError(file: out, object: "", "already exists; pass --force to replace it")
            }
            let folder = (out as NSString).deletingLastPathComponent
            var isFolder: ObjCBool = false
            if !folder.isEmpty
                && !(FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder) && isFolder.boolValue)
            {
                throw DatasetError(file: out, object: "", "folder \(folder) does not exist")
            }
            let dataset = try prepare()
            if let input = Provenance.source(of: dataset, at: out) {
                throw DatasetError(
                    file: out, object: "", "is an input of this preparation (\(input)); choose another --out")
            }
            // A signal stops the write between chunks and removes its temporary file.
            try SignalStop.catching { try DatasetWriter.write(dataset, to: out, compression: compression) }
            let sizes = dataset.splits.map { "\($0.count) \($0.name)" }.joined(separator: ", ")
            let applied = dataset.storage == .uint8 ? ", applied when read" : ""
            print(
                "wrote \(out): \(sizes) samples of shape \(dataset.featureShape), \(dataset.classNames.count) classes, "
                    + "\(dataset.storage.rawValue) features, compression \(compression.rawValue), "
                    + "normalisation \(dataset.normalization.method.rawValue) (\(dataset.normalization.statistics)\(applied))"
            )
        }
    }
}

/// How samples without a split of their own are split; shared by every `prepare` subcommand.
struct PrepareSplitOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Fraction of the samples for a validation split (of the training samples when the source has its own test split).",
            valueName: "fraction"), transform: parseFraction)
    var validationFraction: SplitFraction = .zero

    @Flag(
        inversion: .prefixedNo, help: "Give every class its share of each split (rounding rule: hdf5_data/README.md).")
    var stratify = true

    @Option(help: "Seed of the split's shuffle.")
    var seed: UInt64 = 0

    func plan(testFraction: SplitFraction) -> SplitPlan {
        SplitPlan(testFraction: testFraction, validationFraction: validationFraction, stratified: stratify, seed: seed)
    }
}

/// The test fraction when a source has no test split and none is given.
let defaultTestFraction = SplitFraction("0.3")!

/// Parses a decimal fraction in [0, 1) exactly.
func parseFraction(_ text: String) throws -> SplitFraction {
    guard let fraction = SplitFraction(text) else {
        throw ValidationError("'\(text)' is not a decimal fraction in [0, 1) such as 0.3 (at most 9 decimal places)")
    }
    return fraction
}

/// The command line as one string a shell would run again.
func quotedCommandLine() -> String {
    CommandLine.arguments.map { argument in
        argument.allSatisfy({ $0.isLetter || $0.isNumber || "-_./=:,+@%".contains($0) }) && !argument.isEmpty
            ? argument : "'" + argument.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }.joined(separator: " ")
}

/// Checks the fractions of a source without a test split of its own.
func validateFractions(test: SplitFraction, validation: SplitFraction) throws {
    guard !test.isZero else { throw ValidationError("--test-fraction must be greater than 0") }
    guard
        test.numerator * validation.denominator + validation.numerator * test.denominator < test.denominator
            * validation.denominator
    else {
        throw ValidationError(
            "--test-fraction \(test) and --validation-fraction \(validation) leave nothing for training")
    }
}

/// The normalisations fitted on the training split that `--normalize` offers.
enum FittedNormalization: String, ExpressibleByArgument, CaseIterable {
    case minmax, zscore, none

    var request: NormalizationRequest {
        switch self {
        case .minmax: return .fit(.minmax)
        case .zscore: return .fit(.zscore)
        case .none: return .fit(.none)
        }
    }
}

struct PrepareFashionMNIST: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fashion-mnist",
        abstract:
            "Fashion-MNIST from its four IDX files (gzip or not): 60,000 train and 10,000 test images as [N, 1, 28, 28].",
        discussion:
            "hdf5_data/fetch-fashion-mnist installs Debian's dataset-fashion-mnist package, which puts the files in \(FashionMNIST.defaultDirectory)."
    )

    @Option(
        help:
            "Folder holding train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz]."
    )
    var dir = FashionMNIST.defaultDirectory

    @Option(
        help: ArgumentHelp(
            "paper: x / 255, then (x - 0.286) / 0.353 (the paper's); unit: x / 255; minmax, zscore: per channel, fitted on the training split; none: raw 0-255.",
            valueName: "paper|unit|minmax|zscore|none"))
    var normalize = "paper"

    @OptionGroup var split: PrepareSplitOptions
    @OptionGroup var output: PrepareOutputOptions

    func validate() throws {
        guard FashionMNIST.normalizations[normalize] != nil else {
            throw ValidationError("--normalize must be one of paper, unit, minmax, zscore, none; got '\(normalize)'")
        }
    }

    func run() throws {
        try output.write {
            try FashionMNIST.content(
                directory: dir, normalization: FashionMNIST.normalizations[normalize]!,
                plan: split.plan(testFraction: .zero), commandLine: quotedCommandLine(),
                toolVersion: CGTVersion.current,
                storage: output.storage ?? .uint8)
        }
    }
}

struct PrepareHSI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hsi",
        abstract:
            "A hyperspectral cube [H, W, B] and ground-truth map [H, W]: each labelled pixel becomes a sample of B features.",
        discussion: """
            Arrays are .npy files, or FILE.npz:NAME for an array of a .npz archive. Label ids left after --ignore-label become \
            classes 0..C-1 in ascending order; the ids are kept as label_ids.

            Indian Pines, after hdf5_data/fetch-indian-pines: cgt prepare hsi --cube hdf5_data/raw/Indian_pines_corrected.npy \
            --labels hdf5_data/raw/Indian_pines_gt.npy --class-names hdf5_data/raw/Indian_pines_classes.txt --ignore-label 0 \
            --normalize minmax --test-fraction 0.3 --stratify --seed 0 --out hdf5_data/indian_pines.h5
            """)

    @Option(help: "The cube, [height, width, bands].")
    var cube: String

    @Option(help: "The ground-truth map, [height, width], integer labels.")
    var labels: String

    @Option(
        name: .customLong("ignore-label"), parsing: .unconditionalSingleValue,
        help: "A label to drop (unlabelled pixels, usually 0); repeatable.")
    var ignoredLabels: [Int64] = []

    @Option(help: "A text file naming the classes, one per line in ascending label-id order (default: 'class <id>').")
    var classNames: String?

    @Option(help: "Per-band normalisation fitted on the training split (minmax is the paper's).")
    var normalize = FittedNormalization.minmax

    @Option(
        help: ArgumentHelp("Fraction of the labelled pixels for the test split (default 0.3).", valueName: "fraction"),
        transform: parseFraction)
    var testFraction: SplitFraction?

    @OptionGroup var split: PrepareSplitOptions
    @OptionGroup var output: PrepareOutputOptions

    func validate() throws {
        try validateFractions(test: testFraction ?? defaultTestFraction, validation: split.validationFraction)
    }

    func run() throws {
        try output.write {
            try HyperspectralPreparation.content(
                cube: cube, labels: labels, ignoring: ignoredLabels, classNamesFile: classNames,
                normalization: normalize.request,
                plan: split.plan(testFraction: testFraction ?? defaultTestFraction), commandLine: quotedCommandLine(),
                toolVersion: CGTVersion.current, storage: output.storage ?? .float32)
        }
    }
}

struct PrepareNPY: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "npy",
        abstract: "Features X [N, features...] and integer labels y [N] from NumPy .npy files (or FILE.npz:NAME).",
        discussion:
            """
            Label ids left after --ignore-label become classes 0..C-1 in ascending order; the ids are kept as label_ids. \
            X is read a block of rows at a time, so it may be larger than memory (CGT_MEMORY_LIMIT bounds the blocks; \
            the labels are held whole): a .npy in place, in C or Fortran order, a stored .npz member in place, a deflated \
            one after unpacking it into a temporary file (TMPDIR).
            """
    )

    @Option(
        help:
            "The features, [samples, features...]; any of u1/i1/u2/i2/u4/i4/u8/i8/f4/f8/b1, either byte order, C or Fortran order."
    )
    var x: String

    @Option(help: "The labels, [samples], integers.")
    var y: String

    @Option(help: "Test features, when the data comes with its own test split.")
    var testX: String?

    @Option(help: "Test labels, with --test-x.")
    var testY: String?

    @Option(
        name: .customLong("ignore-label"), parsing: .unconditionalSingleValue,
        help: "A label whose samples are dropped; repeatable.")
    var ignoredLabels: [Int64] = []

    @Option(help: "A text file naming the classes, one per line in ascending label-id order (default: 'class <id>').")
    var classNames: String?

    @Option(help: "Per-feature (first feature axis) normalisation fitted on the training split.")
    var normalize = FittedNormalization.none

    @Option(
        help: ArgumentHelp(
            "Fraction of the samples for the test split (default 0.3; not with --test-x).", valueName: "fraction"),
        transform: parseFraction)
    var testFraction: SplitFraction?

    @OptionGroup var split: PrepareSplitOptions
    @OptionGroup var output: PrepareOutputOptions

    func validate() throws {
        guard (testX == nil) == (testY == nil) else { throw ValidationError("--test-x and --test-y go together") }
        if testX != nil {
            guard testFraction == nil else {
                throw ValidationError("--test-fraction does not apply with --test-x: the test split is given")
            }
        } else {
            try validateFractions(test: testFraction ?? defaultTestFraction, validation: split.validationFraction)
        }
    }

    func run() throws {
        try output.write {
            try NumPyPreparation.content(
                x: x, y: y, testX: testX, testY: testY, ignoring: ignoredLabels, classNamesFile: classNames,
                normalization: normalize.request, plan: split.plan(testFraction: testFraction ?? defaultTestFraction),
                commandLine: quotedCommandLine(), toolVersion: CGTVersion.current, storage: output.storage ?? .float32)
        }
    }
}

struct PrepareCSV: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "csv",
        abstract: "A CSV file with a header row: a label column and numeric feature columns.",
        discussion:
            "Label text becomes the class names, ordered numerically when every label is an integer and alphabetically (by UTF-8 bytes) otherwise."
    )

    @Option(help: "The CSV file.")
    var file: String

    @Option(help: "Name of the label column.")
    var labelColumn: String

    @Option(
        name: .customLong("drop-column"),
        help: "A column that is neither label nor feature (an id, a date); repeatable.")
    var droppedColumns: [String] = []

    @Option(help: "A CSV file with the same columns holding the test split.")
    var testFile: String?

    @Option(help: "Field separator, one ASCII character (\\t for tab).")
    var delimiter = ","

    @Option(help: "Per-column normalisation fitted on the training split.")
    var normalize = FittedNormalization.none

    @Option(
        help: ArgumentHelp(
            "Fraction of the rows for the test split (default 0.3; not with --test-file).", valueName: "fraction"),
        transform: parseFraction)
    var testFraction: SplitFraction?

    @OptionGroup var split: PrepareSplitOptions
    @OptionGroup var output: PrepareOutputOptions

    private var delimiterByte: UInt8? {
        let text = delimiter == "\\t" ? "\t" : delimiter
        guard text.utf8.count == 1, let byte = text.utf8.first, byte < 0x80, byte != UInt8(ascii: "\""), byte != 0x0A
        else { return nil }
        return byte
    }

    func validate() throws {
        guard delimiterByte != nil else {
            throw ValidationError("--delimiter must be one ASCII character other than a quote or newline")
        }
        if testFile != nil {
            guard testFraction == nil else {
                throw ValidationError("--test-fraction does not apply with --test-file: the test split is given")
            }
        } else {
            try validateFractions(test: testFraction ?? defaultTestFraction, validation: split.validationFraction)
        }
    }

    func run() throws {
        try output.write {
            try CSVPreparation.content(
                file: file, testFile: testFile, labelColumn: labelColumn, dropColumns: Set(droppedColumns),
                delimiter: delimiterByte!,
                normalization: normalize.request, plan: split.plan(testFraction: testFraction ?? defaultTestFraction),
                commandLine: quotedCommandLine(), toolVersion: CGTVersion.current, storage: output.storage ?? .float32)
        }
    }
}
