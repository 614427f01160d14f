import Foundation

/// A CSV table with a header row: one label column, the other columns numeric features.
///
/// Label text becomes the class names (ordered as `ClassMapping.fromText` says); with a
/// separate test file, its labels must be ones the training file has.
public enum CSVPreparation {
    public static func prepare(
        file: String, testFile: String?, labelColumn: String, dropColumns: Set<String>, delimiter: UInt8,
        normalization: NormalizationRequest, plan: SplitPlan, commandLine: String, toolVersion: String,
        storage: FeatureStorage = .float32, createdAt: Date = Date()
    ) throws -> PreparedDataset {
        let source = try SourceFile.read(file)
        let table = try CSVReader.read(source, labelColumn: labelColumn, dropColumns: dropColumns, delimiter: delimiter)
        let (classes, labels) = ClassMapping.fromText(table.labels)
        try check(classes, file: file, labelColumn: labelColumn)
        let featureShape = [table.featureColumns.count]
        let samples = LabelledSamples(
            features: table.features, featureShape: featureShape, labels: labels,
            sourceIndex: (0..<Int64(table.rowCount)).map { $0 })
        var sources = [source.record]
        var test: LabelledSamples?
        if let testFile {
            let testSource = try SourceFile.read(testFile)
            let testTable = try CSVReader.read(
                testSource, labelColumn: labelColumn, dropColumns: dropColumns, delimiter: delimiter)
            guard testTable.featureColumns == table.featureColumns else {
                throw DatasetError(file: testFile, object: "line 1", "feature columns differ from those of \(file)")
            }
            var testLabels: [Int32] = []
            for (row, label) in testTable.labels.enumerated() {
                guard let id = classes.classID(ofName: label) else {
                    throw DatasetError(
                        file: testFile, object: "line \(testTable.lines[row])",
                        "label '\(label)' does not occur in \(file)")
                }
                testLabels.append(id)
            }
            test = LabelledSamples(
                features: testTable.features, featureShape: featureShape, labels: testLabels,
                sourceIndex: (0..<Int64(testTable.rowCount)).map { $0 })
            sources.append(testSource.record)
        }
        let provenance = Provenance(
            kind: "csv", sources: sources, commandLine: commandLine, toolVersion: toolVersion, createdAt: createdAt)
        return try DatasetPreparation.prepare(
            samples: samples, test: test, classes: classes, plan: plan, normalization: normalization,
            provenance: provenance, featureSource: file, testFeatureSource: testFile, labelSource: file,
            extraAttributes: attributes(featureColumns: table.featureColumns, labelColumn: labelColumn),
            storage: storage)
    }

    /// Refuses label text that does not make 2 to `DatasetLayout.maxClasses` valid class names.
    static func check(_ classes: ClassMapping, file: String, labelColumn: String) throws {
        guard classes.count >= 2 else {
            throw DatasetError(
                file: file, object: "column '\(labelColumn)'",
                "holds only one label ('\(classes.names[0])'); cgt needs at least 2 classes")
        }
        guard classes.count <= DatasetLayout.maxClasses else {
            throw DatasetError(
                file: file, object: "column '\(labelColumn)'",
                "holds \(classes.count) distinct labels, more classes than cgt handles (\(DatasetLayout.maxClasses))")
        }
        if let problem = DatasetLayout.classNameProblem(classes.names, unique: true) {
            throw DatasetError(file: file, object: "column '\(labelColumn)'", "labels become class names: \(problem)")
        }
    }

    static func attributes(featureColumns: [String], labelColumn: String) -> [String: DatasetAttributeValue] {
        ["feature_names": .strings(featureColumns), "label_column": .string(labelColumn)]
    }
}
