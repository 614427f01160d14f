import CGTFiles

/// Samples whose features stay in their file, read a block of rows at a time, and whose labels
/// are in memory.
struct StreamedSamples {
    let file: NPYFile
    /// Rows of the file kept (labels not ignored), ascending; also each sample's source index.
    let kept: [Int]
    let labels: [Int32]
    let classes: ClassMapping
    let featureShape: [Int]

    /// Refuses the first kept row, in file order, holding a value that is not finite, with the
    /// error `refusal(row, feature, value)` (what reading the file whole would say).
    func checkFinite(_ refusal: (_ row: Int, _ feature: Int, _ value: Float) -> DatasetError) throws {
        guard file.elementType.isFloatingPoint else { return }
        let width = file.rowWidth
        try file.forEachBlock(kept) { start, block in
            guard let bad = block.firstIndex(where: { !$0.isFinite }) else { return }
            throw refusal(kept[start + bad / width], bad % width, block[bad])
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

extension DatasetPreparation {
    /// Per sample held whole by a streamed preparation: the label id, kept row, class id, split
    /// position, source row, label and source index of its split (under 64 bytes).
    static let streamedBytesPerSample = 64

    /// What `prepare(samples:test:...)` makes, step by step over rows of the files: the split
    /// of the labels, the fit of the training rows, the byte checks, and features normalised
    /// and checked as the writer asks for them. Same splits, constants, errors (in the same
    /// order) and bytes as `prepare(...)` of the samples read whole.
    ///
    /// - Parameters:
    ///   - sources: every file read; the content checks, after the writer's last read, that
    ///     none of them changed.
    static func streamedContent(
        samples train: StreamedSamples, test own: StreamedSamples?, plan: SplitPlan,
        normalization request: NormalizationRequest, provenance: Provenance, labelSource: String,
        extraAttributes: [String: DatasetAttributeValue], storage: FeatureStorage, blockBytes: Int,
        sources: [SourceHandle]
    ) throws -> DatasetContent {
        let featureShape = train.featureShape
        let width = featureShape.reduce(1, *)
        let classes = train.classes
        let assignment = try assign(
            labels: train.labels, ownTestCount: own?.kept.count, classes: classes, plan: plan, labelSource: labelSource)
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
                try train.file.forEachBlock(parts[0].rows) { _, block in body(UnsafeBufferPointer(block)) }
            }
        case .fixed(let constants): normalization = constants
        }
        if storage == .uint8 {
            for part in parts {
                try part.file.forEachBlock(part.rows) { start, block in
                    guard let bad = block.firstIndex(where: { !isByte($0) }) else { return }
                    throw notAByte(
                        file: part.file.location, sourceIndex: part.sourceIndex[start + bad / width],
                        feature: bad % width, value: block[bad])
                }
            }
            try checkByteExtremes(normalization, featureShape: featureShape, featureSource: train.file.location)
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
                throw notFiniteAfterNormalisation(
                    file: part.file.location, sourceIndex: part.sourceIndex[range.lowerBound + bad / width],
                    feature: bad % width)
            }
        }
        let attributes = Self.attributes(
            provenance: provenance, normalization: normalization, hasOwnTest: own != nil, plan: plan,
            classes: classes, extra: extraAttributes)
        var content = DatasetContent(
            classNames: classes.names, featureShape: featureShape, splits: splits, attributes: attributes,
            normalization: normalization, storage: storage)
        content.writeBlockBytes = blockBytes
        content.afterLastRead = { for source in sources { try source.checkUnchanged() } }
        return content
    }

    /// What provenance records of `sources`, each file once, in order.
    static func records(_ sources: [SourceHandle]) throws -> [SourceRecord] {
        var seen: Set<String> = []
        return try sources.filter { seen.insert($0.path).inserted }.map { try $0.record() }
    }

    /// Refuses `rows` samples whose labels and splits would not fit in memory.
    static func checkStreamedBudget(rows: Int, file: String) throws {
        if let refusal = MemoryBudget.refusal([rows, streamedBytesPerSample], elementSize: 1) {
            throw DatasetError(file: file, object: "", "holds \(rows) samples: their labels and splits \(refusal)")
        }
    }

    /// Bytes of X read and converted at a time: 16 MiB, or a sixteenth of `MemoryBudget`
    /// under a lower limit (at least 1 MiB).
    static var defaultBlockBytes: Int { min(16 << 20, max(1 << 20, MemoryBudget.bytes / 16)) }
}
