import Foundation

/// Fashion-MNIST (Xiao et al. 2017) from its four IDX files, with its own train/test split.
///
/// Images are stored as `[N, 1, 28, 28]` (one channel), so convolutional models and the
/// per-channel normalisation see the layout PyTorch's `torchvision` uses.
public enum FashionMNIST {
    public static let classNames = [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ]
    /// Where Debian's `dataset-fashion-mnist` package installs the files.
    public static let defaultDirectory = "/usr/share/datasets/fashion-mnist"
    static let stems = (
        trainImages: "train-images-idx3-ubyte", trainLabels: "train-labels-idx1-ubyte",
        testImages: "t10k-images-idx3-ubyte", testLabels: "t10k-labels-idx1-ubyte"
    )

    /// The paper's normalisation: pixels scaled to [0, 1], then (x - 0.286) / 0.353.
    public static let paperNormalization = Normalization(
        method: .fixed, offset: [0.286 * 255], scale: [0.353 * 255],
        statistics: "fixed: x / 255, then (x - 0.286) / 0.353 (the paper's Fashion-MNIST mean and std)")
    /// Pixels scaled to [0, 1] and nothing else.
    public static let unitScaling = Normalization(
        method: .fixed, offset: [0], scale: [255], statistics: "fixed: x / 255")

    /// The normalisations `cgt prepare fashion-mnist --normalize` offers, by name.
    public static let normalizations: [String: NormalizationRequest] = [
        "paper": .fixed(paperNormalization), "unit": .fixed(unitScaling),
        "minmax": .fit(.minmax), "zscore": .fit(.zscore), "none": .fit(.none),
    ]

    /// The train images, train labels, test images and test labels files in `directory`.
    static func files(in directory: String) throws -> [String] {
        try [stems.trainImages, stems.trainLabels, stems.testImages, stems.testLabels].map {
            try locate($0, in: directory)
        }
    }

    /// The path of `stem` in `directory`, gzip-compressed (`.gz`) or not.
    static func locate(_ stem: String, in directory: String) throws -> String {
        let plain = (directory as NSString).appendingPathComponent(stem)
        for candidate in [plain + ".gz", plain] where FileManager.default.fileExists(atPath: candidate) {
            return candidate
        }
        throw DatasetError(
            file: plain + ".gz", object: "",
            "no such file (nor \(stem)); run hdf5_data/fetch-fashion-mnist, or pass --dir")
    }

    /// Reads one images file and its labels file into samples of shape `[1, rows, columns]`.
    public static func load(images imagesFile: SourceFile, labels labelsFile: SourceFile) throws -> LabelledSamples {
        let images = try IDXReader.read(imagesFile)
        try checkImages(images.shape, of: images.elementType, in: imagesFile.path)
        let labels = try labels(
            IDXReader.read(labelsFile), path: labelsFile.path, images: images.shape[0], in: imagesFile.path)
        return LabelledSamples(
            features: images.floatValues(), featureShape: [1, images.shape[1], images.shape[2]],
            labels: labels, sourceIndex: (0..<Int64(labels.count)).map { $0 })
    }

    /// Refuses an images file whose header (`shape` of `type`) is not Fashion-MNIST's.
    static func checkImages(_ shape: [Int], of type: NumericArray.ElementType, in path: String) throws {
        guard type == .uint8, shape.count == 3 else {
            throw DatasetError(
                file: path, object: "",
                "holds \(shape.count) dimension(s) of \(type), expected images: 3 dimensions of uint8 (magic 0x00000803)"
            )
        }
    }

    /// The class ids of a labels file, after checking that it holds one for each of the
    /// `count` images of `imagesPath`.
    static func labels(_ labels: NumericArray, path: String, images count: Int, in imagesPath: String) throws -> [Int32]
    {
        guard labels.elementType == .uint8, labels.shape.count == 1 else {
            throw DatasetError(
                file: path, object: "",
                "holds \(labels.shape.count) dimension(s) of \(labels.elementType), expected labels: 1 dimension of uint8 (magic 0x00000801)"
            )
        }
        guard labels.shape[0] == count else {
            throw DatasetError(
                file: path, object: "", "holds \(labels.shape[0]) labels but \(imagesPath) holds \(count) images")
        }
        let ids = try labels.integerValues(file: path)
        if let bad = ids.firstIndex(where: { $0 < 0 || $0 >= Int64(classNames.count) }) {
            throw DatasetError(
                file: path, object: "", "label \(ids[bad]) of image \(bad) is outside 0...\(classNames.count - 1)")
        }
        return ids.map { Int32($0) }
    }

    static let classes = ClassMapping(names: classNames, originalIDs: (0..<10).map { Int64($0) })

    /// Reads the four files in `directory` and prepares them; `plan`'s validation fraction is
    /// of the 60,000 training images (the test split is the source's own). The images are
    /// bytes, so `uint8` storage (`cgt prepare`'s default for them) keeps them as they are, a
    /// quarter of float32.
    public static func prepare(
        directory: String, normalization: NormalizationRequest, plan: SplitPlan, commandLine: String,
        toolVersion: String, storage: FeatureStorage = .float32, createdAt: Date = Date()
    ) throws -> PreparedDataset {
        let paths = try files(in: directory)
        let sources = try paths.map { try SourceFile.read($0) }
        let train = try load(images: sources[0], labels: sources[1])
        let test = try load(images: sources[2], labels: sources[3])
        guard train.featureShape == test.featureShape else {
            throw DatasetError(
                file: paths[2], object: "",
                "images are \(test.featureShape.dropFirst()) but the training images are \(train.featureShape.dropFirst())"
            )
        }
        let provenance = Provenance(
            kind: "fashion-mnist", sources: sources.map(\.record), commandLine: commandLine, toolVersion: toolVersion,
            createdAt: createdAt)
        return try DatasetPreparation.prepare(
            samples: consume train, test: consume test,
            classes: classes,
            plan: plan, normalization: normalization, provenance: provenance, featureSource: paths[0],
            testFeatureSource: paths[2], labelSource: paths[1], storage: storage)
    }
}
