import Foundation

extension HyperspectralPreparation {
    /// What `prepare` makes, with the spectra of the labelled pixels read from the cube a block
    /// of pixels at a time: memory for the label map and a few blocks. Same file as
    /// `prepare(...)` writes.
    ///
    /// The cube is a `.npy` file or `.npz` member as `NPYFile` opens it: in C order its pixels
    /// are rows read in place; in Fortran order (as Indian Pines ships) they are first copied
    /// in C order into a temporary file, a block of image rows at a time.
    public static func content(
        cube: String, labels: String, ignoring ignored: [Int64], classNamesFile: String?,
        normalization: NormalizationRequest, plan: SplitPlan, commandLine: String, toolVersion: String,
        storage: FeatureStorage = .float32, createdAt: Date = Date()
    ) throws -> DatasetContent {
        try content(
            cube: cube, labels: labels, ignoring: ignored, classNamesFile: classNamesFile,
            normalization: normalization, plan: plan, commandLine: commandLine, toolVersion: toolVersion,
            storage: storage, createdAt: createdAt, blockBytes: DatasetPreparation.defaultBlockBytes)
    }

    /// `content(...)` reading `blockBytes` of the cube at a time.
    static func content(
        cube: String, labels: String, ignoring ignored: [Int64], classNamesFile: String?,
        normalization: NormalizationRequest, plan: SplitPlan, commandLine: String, toolVersion: String,
        storage: FeatureStorage, createdAt: Date, blockBytes: Int
    ) throws -> DatasetContent {
        guard let cubeFile = try NPYFile.openIfStreamable(cube, blockBytes: blockBytes, rowAxes: 2),
            let labelFile = try NPYFile.openIfStreamable(labels, blockBytes: 0)
        else {
            return try prepare(
                cube: cube, labels: labels, ignoring: ignored, classNamesFile: classNamesFile,
                normalization: normalization, plan: plan, commandLine: commandLine, toolVersion: toolVersion,
                storage: storage, createdAt: createdAt
            ).content
        }
        let names = try classNamesFile.map { try ClassMapping.readNames($0) }
        try DatasetPreparation.checkStreamedBudget(rows: cubeFile.rowCount, file: cubeFile.location)
        let (kept, ids, classes) = try labelling(
            cubeShape: cubeFile.arrayShape, labels: labelFile.array(), cubePath: cubeFile.location,
            labelsPath: labelFile.location, ignoring: Set(ignored), classNames: names?.names,
            classNamesFile: classNamesFile ?? "")
        let samples = StreamedSamples(
            file: cubeFile, kept: kept, labels: ids, classes: classes, featureShape: [cubeFile.rowWidth])
        try samples.checkFinite { pixel, band, value in
            notFinite(
                pixel: pixel, band: band, value: value, width: cubeFile.arrayShape[1], cubePath: cubeFile.location)
        }
        // As `prepare` records them: the cube's file, then the label map's, even when they are one archive.
        // One archive holding both is read and hashed once.
        let cubeRecord = try cubeFile.source.record()
        let labelRecord =
            labelFile.source.path == cubeFile.source.path ? cubeRecord : try labelFile.source.record()
        var sources = [cubeRecord, labelRecord]
        if let names { sources.append(names.source.record) }
        let provenance = Provenance(
            kind: "hsi", sources: sources, commandLine: commandLine, toolVersion: toolVersion, createdAt: createdAt)
        var extra: [String: DatasetAttributeValue] = ["image_shape": .ints(Array(cubeFile.arrayShape.prefix(2)))]
        if !ignored.isEmpty { extra["ignored_labels"] = .ints(Set(ignored).sorted().map { Int($0) }) }
        return try DatasetPreparation.streamedContent(
            samples: samples, test: nil, plan: plan, normalization: normalization, provenance: provenance,
            labelSource: labelFile.location, extraAttributes: extra, storage: storage, blockBytes: blockBytes,
            sources: [cubeFile.source, labelFile.source])
    }
}
