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
            storage: storage, createdAt: createdAt, blockBytes: defaultBlockBytes)
    }

    /// Bytes of X read and converted at a time: 16 MiB, or a sixteenth of `MemoryBudget`
    /// under a lower limit (at least 1 MiB).
    static var defaultBlockBytes: Int { min(16 << 20, max(1 << 20, MemoryBudget.bytes / 16)) }

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
        // Held whole, per sample: the label id, kept row, class id, split position, source row,
        // label and source index of its split (under 64 bytes).
        if let refusal = MemoryBudget.refusal([trainX.rowCount, 64], elementSize: 1) {
            throw DatasetError(
                file: trainX.location, object: "",
                "holds \(trainX.rowCount) samples: their labels and splits \(refusal)")
        }
        guard let trainY = try NPYFile.openIfStreamable(y, blockBytes: 0) else { return try inMemory() }
        let ignoredSet = Set(ignored)
        let train = try StreamedSamples(
            x: trainX, y: trainY, ignoring: ignoredSet, mapping: nil, classNames: names?.names,
            classNamesFile: classNamesFile ?? "")
        var own: StreamedSamples?
        var inputs = [trainX.source, trainY.source]
        if let testX, let testY {
            guard let ownX = try NPYFile.openIfStreamable(testX, blockBytes: blockBytes) else {
                return try inMemory()
            }
            guard let ownY = try NPYFile.openIfStreamable(testY, blockBytes: 0) else { return try inMemory() }
            let test = try StreamedSamples(
                x: ownX, y: ownY, ignoring: ignoredSet, mapping: train.classes, classNames: nil, classNamesFile: "")
            guard test.featureShape == train.featureShape else {
                throw DatasetError(
                    file: ownX.location, object: "",
                    "test samples have shape \(test.featureShape), training samples \(train.featureShape)")
            }
            own = test
            inputs += [ownX.source, ownY.source]
        }
        var sources: [SourceRecord] = []
        var seen: Set<String> = []
        for input in inputs where seen.insert(input.path).inserted { sources.append(try input.record()) }
        if let names { sources.append(names.source.record) }
        let provenance = Provenance(
            kind: "npy", sources: sources, commandLine: commandLine, toolVersion: toolVersion, createdAt: createdAt)
        var extra: [String: DatasetAttributeValue] = [:]
        if !ignored.isEmpty { extra["ignored_labels"] = .ints(ignoredSet.sorted().map { Int($0) }) }

        // DatasetPreparation.prepare, step by step, over rows of the files.
        let featureShape = train.featureShape
        let width = featureShape.reduce(1, *)
        let classes = train.classes
        let assignment = try DatasetPreparation.assign(
            labels: train.labels, ownTestCount: own?.kept.count, classes: classes, plan: plan,
            labelSource: trainY.location)
        let parts: [StreamedSplit] = [
            StreamedSplit(.train, train, assignment.train),
            StreamedSplit(.validation, train, assignment.validation),
            own.map { StreamedSplit(.test, $0, Array($0.kept.indices)) }
                ?? StreamedSplit(.test, train, assignment.test),
        ]
        let normalization: Normalization
        switch request {
        case .fit(let method):
            normalization = try Normalization.fit(method, featureShape: featureShape) { body in
                try trainX.forEachBlock(parts[0].rows) { _, block in body(UnsafeBufferPointer(block)) }
            }
        case .fixed(let constants): normalization = constants
        }
        if storage == .uint8 {
            for part in parts {
                try part.file.forEachBlock(part.rows) { start, block in
                    guard let bad = block.firstIndex(where: { !DatasetPreparation.isByte($0) }) else { return }
                    throw DatasetPreparation.notAByte(
                        file: part.file.location, sourceIndex: part.sourceIndex[start + bad / width],
                        feature: bad % width,
                        value: block[bad])
                }
            }
            try DatasetPreparation.checkByteExtremes(
                normalization, featureShape: featureShape, featureSource: trainX.location)
        }

        // Float32 features are normalised as they are written, and checked there: the first
        // value normalisation makes non-finite is the one the in-memory path names (splits and
        // rows in file order), and a refused file is never renamed into place.
        let splits = parts.filter { $0.count > 0 }.map { part in
            SplitContent(name: part.name, labels: part.labels, sourceIndex: part.sourceIndex) { range, output in
                try part.file.gather(part.rows[range], into: output)
                guard storage == .float32 else { return }
                normalization.apply(to: output, featureShape: featureShape)
                guard let bad = output.firstIndex(where: { !$0.isFinite }) else { return }
                throw DatasetPreparation.notFiniteAfterNormalisation(
                    file: part.file.location, sourceIndex: part.sourceIndex[range.lowerBound + bad / width],
                    feature: bad % width)
            }
        }
        let attributes = DatasetPreparation.attributes(
            provenance: provenance, normalization: normalization, hasOwnTest: own != nil, plan: plan,
            classes: classes, extra: extra)
        var content = DatasetContent(
            classNames: classes.names, featureShape: featureShape, splits: splits, attributes: attributes,
            normalization: normalization, storage: storage)
        content.writeBlockBytes = blockBytes
        content.afterLastRead = { for input in inputs { try input.checkUnchanged() } }
        return content
    }
}

/// The kept samples of a `.npy` X whose labels are in memory, checked for non-finite values
/// as `NumPyPreparation.samples` checks them.
private struct StreamedSamples {
    let file: NPYFile
    /// Rows of X kept (labels not ignored), ascending.
    let kept: [Int]
    let labels: [Int32]
    let classes: ClassMapping
    let featureShape: [Int]

    init(
        x: NPYFile, y: NPYFile, ignoring ignored: Set<Int64>, mapping: ClassMapping?, classNames: [String]?,
        classNamesFile: String
    ) throws {
        (kept, labels, classes, featureShape) = try NumPyPreparation.labelling(
            xShape: x.shape, xLocation: x.location, y: try y.array(), yLocation: y.location, ignoring: ignored,
            mapping: mapping, classNames: classNames,
            classNamesFile: classNamesFile)
        file = x
        guard x.elementType.isFloatingPoint else { return }
        let width = x.rowWidth
        let kept = kept
        try x.forEachBlock(kept) { start, block in
            guard let bad = block.firstIndex(where: { !$0.isFinite }) else { return }
            throw DatasetError(
                file: x.location, object: "",
                "sample \(kept[start + bad / width]), feature \(bad % width) is \(block[bad]), not a finite float32")
        }
    }
}

/// One split of streamed samples: positions among their kept samples, and the source rows.
private struct StreamedSplit {
    let name: DatasetSplitName
    let file: NPYFile
    /// Rows of the file, ascending.
    let rows: [Int]
    let labels: [Int32]
    let sourceIndex: [Int64]

    init(_ name: DatasetSplitName, _ samples: StreamedSamples, _ positions: [Int]) {
        self.name = name
        file = samples.file
        rows = positions.map { samples.kept[$0] }
        labels = positions.map { samples.labels[$0] }
        sourceIndex = rows.map { Int64($0) }
    }

    var count: Int { rows.count }
}
