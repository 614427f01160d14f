import Foundation

extension CSVPreparation {
    /// What `prepare` makes, reading each CSV file once, a block at a time: its features are
    /// parsed and checked as `CSVReader.read` does and written as float32 rows to a temporary
    /// file, which the split, fit and write then read a block of rows at a time; its labels are
    /// held as one number per row (each distinct text once). Same file as `prepare(...)` writes.
    public static func content(
        file: String, testFile: String?, labelColumn: String, dropColumns: Set<String>, delimiter: UInt8,
        normalization: NormalizationRequest, plan: SplitPlan, commandLine: String, toolVersion: String,
        storage: FeatureStorage = .float32, createdAt: Date = Date()
    ) throws -> DatasetContent {
        try content(
            file: file, testFile: testFile, labelColumn: labelColumn, dropColumns: dropColumns, delimiter: delimiter,
            normalization: normalization, plan: plan, commandLine: commandLine, toolVersion: toolVersion,
            storage: storage, createdAt: createdAt, blockBytes: DatasetPreparation.defaultBlockBytes)
    }

    /// `content(...)` converting and reading `blockBytes` of features at a time.
    static func content(
        file: String, testFile: String?, labelColumn: String, dropColumns: Set<String>, delimiter: UInt8,
        normalization: NormalizationRequest, plan: SplitPlan, commandLine: String, toolVersion: String,
        storage: FeatureStorage, createdAt: Date, blockBytes: Int
    ) throws -> DatasetContent {
        func inMemory() throws -> DatasetContent {
            try prepare(
                file: file, testFile: testFile, labelColumn: labelColumn, dropColumns: dropColumns,
                delimiter: delimiter, normalization: normalization, plan: plan, commandLine: commandLine,
                toolVersion: toolVersion, storage: storage, createdAt: createdAt
            ).content
        }
        func read(_ path: String, keepingLines: Bool = false) throws -> Table? {
            guard let source = SourceHandle.openIfRegular(path) else { return nil }
            return try Table(
                source, labelColumn: labelColumn, dropColumns: dropColumns, delimiter: delimiter,
                blockBytes: blockBytes,
                keepingLines: keepingLines)
        }
        guard let table = try read(file) else { return try inMemory() }
        let (classes, ids) = ClassMapping.fromText(table.distinctLabels)
        try check(classes, file: file, labelColumn: labelColumn)
        let featureShape = [table.featureColumns.count]
        let train = StreamedSamples(
            file: table.features, kept: Array(table.labels.indices), labels: table.labels.map { ids[Int($0)] },
            classes: classes, featureShape: featureShape)
        var test: StreamedSamples?
        var sources = [table.features.source]
        if let testFile {
            guard let testTable = try read(testFile, keepingLines: true) else { return try inMemory() }
            guard testTable.featureColumns == table.featureColumns else {
                throw DatasetError(file: testFile, object: "line 1", "feature columns differ from those of \(file)")
            }
            let testIDs = testTable.distinctLabels.map { classes.classID(ofName: $0) }
            var testLabels: [Int32] = []
            testLabels.reserveCapacity(testTable.labels.count)
            for (row, label) in testTable.labels.enumerated() {
                guard let id = testIDs[Int(label)] else {
                    throw DatasetError(
                        file: testFile, object: "line \(testTable.lines[row])",
                        "label '\(testTable.distinctLabels[Int(label)])' does not occur in \(file)")
                }
                testLabels.append(id)
            }
            test = StreamedSamples(
                file: testTable.features, kept: Array(testLabels.indices), labels: testLabels, classes: classes,
                featureShape: featureShape)
            sources.append(testTable.features.source)
        }
        let provenance = Provenance(
            kind: "csv", sources: try sources.map { try $0.record() }, commandLine: commandLine,
            toolVersion: toolVersion, createdAt: createdAt)
        return try DatasetPreparation.streamedContent(
            samples: train, test: test, plan: plan, normalization: normalization, provenance: provenance,
            labelSource: file,
            extraAttributes: attributes(featureColumns: table.featureColumns, labelColumn: labelColumn),
            storage: storage, blockBytes: blockBytes, sources: sources)
    }

    /// A CSV file read once: its features as float32 rows in a temporary file, its labels as
    /// indices into the distinct label texts, and the line of each row when asked (a test
    /// file's rows are named by line in its refusals; a training file's never are).
    private struct Table {
        let featureColumns: [String]
        let features: NPYFile
        let distinctLabels: [String]
        let labels: [Int32]
        let lines: [Int]

        init(
            _ source: SourceHandle, labelColumn: String, dropColumns: Set<String>, delimiter: UInt8, blockBytes: Int,
            keepingLines: Bool
        ) throws {
            let path = source.path
            let spool = try SourceHandle.temporary(holdingDataOf: path)
            var records = try CSVReader.RecordIterator(source, delimiter: delimiter, pieceBytes: blockBytes)
            var block: [Float] = []
            var index: [String: Int32] = [:]
            var distinct: [String] = []
            var labels: [Int32] = []
            var lines: [Int] = []
            func flush() throws {
                try block.withUnsafeBytes { try spool.append($0) }
                block.removeAll(keepingCapacity: true)
            }
            let columns = try CSVReader.scan(
                &records, path: path, labelColumn: labelColumn, dropColumns: dropColumns
            ) { line, values, label in
                if labels.count % 65_536 == 0 {
                    try DatasetPreparation.checkStreamedBudget(rows: labels.count + 65_536, file: path)
                }
                // float32 little-endian, as `NPYFile` reads `<f4`.
                for value in values { block.append(Float(bitPattern: value.bitPattern.littleEndian)) }
                if block.count * MemoryLayout<Float>.size >= blockBytes { try flush() }
                let id: Int32
                if let known = index[label] {
                    id = known
                } else {
                    id = Int32(distinct.count)
                    index[label] = id
                    distinct.append(label)
                }
                labels.append(id)
                if keepingLines { lines.append(line) }
            }
            try flush()
            featureColumns = columns
            distinctLabels = distinct
            self.labels = labels
            self.lines = lines
            features = NPYFile(
                source: source, data: spool, location: path, shape: [labels.count, columns.count],
                elementType: .float32, isBigEndian: false, fortranOrder: false, dataStart: 0, blockBytes: blockBytes)
        }
    }
}
