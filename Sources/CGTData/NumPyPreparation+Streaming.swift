import CGTFiles
import Foundation

extension NumPyPreparation {
    /// What `prepare` makes, with the features of X read from the file a block of rows at a
    /// time as they are checked, fitted and written: memory for the labels and a few blocks,
    /// not for X.
    ///
    /// X (and the test X) stream in any form `NPYFile` opens: `.npy` in C or Fortran order, a
    /// stored `.npz` member in place, a deflated one unpacked to a temporary file. Either way
    /// the file written is
    /// the same: rows are converted as `NumericArray.floatValues()` does, split by the same
    /// `Splitter.split` of the labels, normalised by the same `Normalization.fit` (which visits
    /// the rows in the same order) and `apply`, and refused with the same errors, in the same
    /// order.
    public static func content(
        x: String, y: String, testX: String?, testY: String?, ignoring ignored: [Int64], classNamesFile: String?,
        normalization: NormalizationRequest, plan: SplitPlan, commandLine: String, toolVersion: String,
        storage: FeatureStorage = .float32, createdAt: Date = Date()
    ) throws -> DatasetContent {
        try content(
            x: x, y: y, testX: testX, testY: testY, ignoring: ignored, classNamesFile: classNamesFile,
            normalization: normalization, plan: plan, commandLine: commandLine, toolVersion: toolVersion,
            storage: storage, createdAt: createdAt, blockBytes: DatasetPreparation.defaultBlockBytes)
    }

    /// `content(...)` reading `blockBytes` of X at a time (and writing blocks of that size).
    static func content(
        x: String, y: String, testX: String?, testY: String?, ignoring ignored: [Int64], classNamesFile: String?,
        normalization request: NormalizationRequest, plan: SplitPlan, commandLine: String, toolVersion: String,
        storage: FeatureStorage, createdAt: Date, blockBytes: Int
    ) throws -> DatasetContent {
        func inMemory() throws -> DatasetContent {
            try prepare(
                x: x, y: y, testX: testX, testY: testY, ignoring: ignored, classNamesFile: classNamesFile,
                normalization: request, plan: plan, commandLine: commandLine, toolVersion: toolVersion,
                storage: storage, createdAt: createdAt
            ).content
        }
        let names = try classNamesFile.map { try ClassMapping.readNames($0) }
        guard let trainX = try NPYFile.openIfStreamable(x, blockBytes: blockBytes) else { return try inMemory() }
        try DatasetPreparation.checkStreamedBudget(rows: trainX.rowCount, file: trainX.location)
        guard let trainY = try NPYFile.openIfStreamable(y, blockBytes: 0) else { return try inMemory() }
        let ignoredSet = Set(ignored)
        let train = try samples(
            x: trainX, y: trainY, ignoring: ignoredSet, mapping: nil, classNames: names?.names,
            classNamesFile: classNamesFile ?? "")
        var own: StreamedSamples?
        var inputs = [trainX.source, trainY.source]
        if let testX, let testY {
            guard let ownX = try NPYFile.openIfStreamable(testX, blockBytes: blockBytes),
                let ownY = try NPYFile.openIfStreamable(testY, blockBytes: 0)
            else { return try inMemory() }
            let test = try samples(
                x: ownX, y: ownY, ignoring: ignoredSet, mapping: train.classes, classNames: nil, classNamesFile: "")
            guard test.featureShape == train.featureShape else {
                throw DatasetError(
                    file: ownX.location, object: "",
                    "test samples have shape \(test.featureShape), training samples \(train.featureShape)")
            }
            own = test
            inputs += [ownX.source, ownY.source]
        }
        var sources = try DatasetPreparation.records(inputs)
        if let names { sources.append(names.source.record) }
        let provenance = Provenance(
            kind: "npy", sources: sources, commandLine: commandLine, toolVersion: toolVersion, createdAt: createdAt)
        var extra: [String: DatasetAttributeValue] = [:]
        if !ignored.isEmpty { extra["ignored_labels"] = .ints(ignoredSet.sorted().map { Int($0) }) }
        return try DatasetPreparation.streamedContent(
            samples: train, test: own, plan: plan, normalization: request, provenance: provenance,
            labelSource: trainY.location, extraAttributes: extra, storage: storage, blockBytes: blockBytes,
            sources: inputs)
    }

    /// The kept samples of X whose labels `y` holds, checked for non-finite values as
    /// `samples(x:y:...)` checks them in memory.
    private static func samples(
        x: NPYFile, y: NPYFile, ignoring ignored: Set<Int64>, mapping: ClassMapping?, classNames: [String]?,
        classNamesFile: String
    ) throws -> StreamedSamples {
        let (kept, labels, classes, featureShape) = try labelling(
            xShape: x.shape, xLocation: x.location, y: try y.array(), yLocation: y.location, ignoring: ignored,
            mapping: mapping, classNames: classNames, classNamesFile: classNamesFile)
        let samples = StreamedSamples(file: x, kept: kept, labels: labels, classes: classes, featureShape: featureShape)
        try samples.checkFinite { row, feature, value in
            DatasetError(
                file: x.location, object: "", "sample \(row), feature \(feature) is \(value), not a finite float32")
        }
        return samples
    }
}
