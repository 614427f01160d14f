import Foundation

extension FashionMNIST {
    /// What `prepare` makes, with the images read from their files a block of rows at a time
    /// (a gzip file's are unpacked into a temporary file first): memory for the labels and a
    /// few blocks. Same file as `prepare(...)` writes.
    public static func content(
        directory: String, normalization: NormalizationRequest, plan: SplitPlan, commandLine: String,
        toolVersion: String, storage: FeatureStorage = .float32, createdAt: Date = Date()
    ) throws -> DatasetContent {
        try content(
            directory: directory, normalization: normalization, plan: plan, commandLine: commandLine,
            toolVersion: toolVersion, storage: storage, createdAt: createdAt,
            blockBytes: DatasetPreparation.defaultBlockBytes)
    }

    /// `content(...)` reading `blockBytes` of images at a time.
    static func content(
        directory: String, normalization: NormalizationRequest, plan: SplitPlan, commandLine: String,
        toolVersion: String, storage: FeatureStorage, createdAt: Date, blockBytes: Int
    ) throws -> DatasetContent {
        let paths = try files(in: directory)
        var opened: [NPYFile] = []
        for (index, path) in paths.enumerated() {
            guard let file = try IDXReader.open(path, blockBytes: index.isMultiple(of: 2) ? blockBytes : 0) else {
                return try prepare(
                    directory: directory, normalization: normalization, plan: plan, commandLine: commandLine,
                    toolVersion: toolVersion, storage: storage, createdAt: createdAt
                ).content
            }
            opened.append(file)
        }
        func samples(_ images: NPYFile, _ labels: NPYFile) throws -> StreamedSamples {
            try DatasetPreparation.checkStreamedBudget(rows: images.rowCount, file: images.location)
            let ids = try Self.labels(
                labels.array(), path: labels.location, images: images.shape, of: images.elementType,
                in: images.location)
            return StreamedSamples(
                file: images, kept: Array(ids.indices), labels: ids, classes: classes,
                featureShape: [1] + images.shape.dropFirst())
        }
        let train = try samples(opened[0], opened[1])
        let test = try samples(opened[2], opened[3])
        guard train.featureShape == test.featureShape else {
            throw DatasetError(
                file: paths[2], object: "",
                "images are \(test.featureShape.dropFirst()) but the training images are \(train.featureShape.dropFirst())"
            )
        }
        let sources = opened.map(\.source)
        let provenance = Provenance(
            kind: "fashion-mnist", sources: try DatasetPreparation.records(sources), commandLine: commandLine,
            toolVersion: toolVersion, createdAt: createdAt)
        return try DatasetPreparation.streamedContent(
            samples: train, test: test, plan: plan, normalization: normalization, provenance: provenance,
            labelSource: paths[1], extraAttributes: [:], storage: storage, blockBytes: blockBytes, sources: sources)
    }
}
