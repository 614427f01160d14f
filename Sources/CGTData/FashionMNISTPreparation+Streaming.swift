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
        func inMemory() throws -> DatasetContent {
            try prepare(
                directory: directory, normalization: normalization, plan: plan, commandLine: commandLine,
                toolVersion: toolVersion, storage: storage, createdAt: createdAt
            ).content
        }
        var opened: [NPYFile] = []
        // The labels are read and checked against the images' header before the images' data
        // is unpacked, in the order reading the files whole checks them.
        func samples(images: String, labels: String) throws -> StreamedSamples? {
            var labelFile: NPYFile?
            var ids: [Int32] = []
            guard
                let imageFile = try IDXReader.open(
                    images, blockBytes: blockBytes,
                    check: { shape, type in
                        try checkImages(shape, of: type, in: images)
                        labelFile = try IDXReader.open(labels, blockBytes: 0)
                        guard let labelFile else { return }
                        ids = try Self.labels(labelFile.array(), path: labels, images: shape[0], in: images)
                        try DatasetPreparation.checkStreamedBudget(rows: shape[0], file: images)
                    }),
                let labelFile
            else { return nil }
            opened += [imageFile, labelFile]
            return StreamedSamples(
                file: imageFile, kept: Array(ids.indices), labels: ids, classes: classes,
                featureShape: [1] + imageFile.shape.dropFirst())
        }
        guard let train = try samples(images: paths[0], labels: paths[1]),
            let test = try samples(images: paths[2], labels: paths[3])
        else { return try inMemory() }
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
