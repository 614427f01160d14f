import Foundation

/// A hyperspectral image: a cube `[H, W, B]` of spectra and a ground-truth map `[H, W]`.
///
/// Each labelled pixel becomes one sample of `B` features; pixels whose label is ignored
/// (usually 0, "unlabelled") are dropped, and the remaining label ids become classes
/// `0..<C` in ascending id order, with the ids kept in the `label_ids` attribute. Each sample's
/// `source_index` is its pixel, row * W + column.
public enum HyperspectralPreparation {
    /// The labelled pixels of `cube` as samples, with the class mapping of their labels.
    public static func samples(
        cube: NumericArray, labels: NumericArray, cubePath: String, labelsPath: String,
        ignoring ignored: Set<Int64>, classNames: [String]? = nil, classNamesFile: String = ""
    ) throws -> (samples: LabelledSamples, classes: ClassMapping) {
        let (kept, classes, mapping) = try labelling(
            cubeShape: cube.shape, labels: labels, cubePath: cubePath, labelsPath: labelsPath, ignoring: ignored,
            classNames: classNames, classNamesFile: classNamesFile)
        let bands = cube.shape[2]
        let spectra = cube.floatValues()
        var features = [Float](repeating: 0, count: kept.count * bands)
        features.withUnsafeMutableBufferPointer { destination in
            spectra.withUnsafeBufferPointer { source in
                for (row, pixel) in kept.enumerated() {
                    (destination.baseAddress! + row * bands).update(
                        from: source.baseAddress! + pixel * bands, count: bands)
                }
            }
        }
        let samples = LabelledSamples(
            features: features, featureShape: [bands], labels: classes,
            sourceIndex: kept.map { Int64($0) })
        if let bad = samples.firstNonFinite() {
            throw notFinite(
                pixel: kept[bad.sample], band: bad.feature, value: features[bad.sample * bands + bad.feature],
                width: cube.shape[1], cubePath: cubePath)
        }
        return (samples, mapping)
    }

    /// The labelled pixels (`row * W + column`, ascending) of a cube of `cubeShape`, their class
    /// ids and the class mapping, after checking the cube and label map agree.
    static func labelling(
        cubeShape: [Int], labels: NumericArray, cubePath: String, labelsPath: String, ignoring ignored: Set<Int64>,
        classNames: [String]?, classNamesFile: String
    ) throws -> (kept: [Int], labels: [Int32], classes: ClassMapping) {
        guard cubeShape.count == 3 else {
            throw DatasetError(
                file: cubePath, object: "", "cube has shape \(cubeShape), expected three axes [height, width, bands]")
        }
        guard labels.shape.count == 2 else {
            throw DatasetError(
                file: labelsPath, object: "", "label map has shape \(labels.shape), expected two axes [height, width]")
        }
        let (height, width, bands) = (cubeShape[0], cubeShape[1], cubeShape[2])
        guard labels.shape == [height, width] else {
            throw DatasetError(
                file: labelsPath, object: "",
                "label map is \(labels.shape[0]) x \(labels.shape[1]) pixels but the cube \(cubePath) is \(height) x \(width)"
            )
        }
        guard bands > 0 else { throw DatasetError(file: cubePath, object: "", "cube has no bands") }
        let ids = try labels.integerValues(file: labelsPath)
        let kept = ids.indices.filter { !ignored.contains(ids[$0]) }
        let droppedText =
            ignored.isEmpty
            ? "" : " after dropping label(s) \(ignored.sorted().map(String.init).joined(separator: ", "))"
        guard !kept.isEmpty else {
            throw DatasetError(file: labelsPath, object: "", "no labelled pixels left\(droppedText)")
        }
        let keptIDs = kept.map { ids[$0] }
        let (mapping, classes) = try ClassMapping.fromIntegers(keptIDs, names: classNames, namesFile: classNamesFile)
        guard mapping.count >= 2 else {
            throw DatasetError(
                file: labelsPath, object: "",
                "only one class (label \(keptIDs[0])) is left\(droppedText); cgt needs at least 2")
        }
        return (kept, classes, mapping)
    }

    /// The refusal of a labelled pixel whose spectrum holds a value that is not finite.
    static func notFinite(pixel: Int, band: Int, value: Float, width: Int, cubePath: String) -> DatasetError {
        DatasetError(
            file: cubePath, object: "",
            "pixel (row \(pixel / width), column \(pixel % width)), band \(band) is \(value), not a finite float32")
    }

    /// Reads the cube and label map (`.npy` files or `.npz` members, see `NumPyInput`) and prepares them.
    public static func prepare(
        cube cubeSpecification: String, labels labelsSpecification: String, ignoring ignored: [Int64],
        classNamesFile: String?, normalization: NormalizationRequest, plan: SplitPlan, commandLine: String,
        toolVersion: String, storage: FeatureStorage = .float32, createdAt: Date = Date()
    ) throws -> PreparedDataset {
        let cube = try NumPyInput.load(cubeSpecification)
        let labels = try NumPyInput.load(labelsSpecification)
        let names = try classNamesFile.map { try ClassMapping.readNames($0) }
        let (samples, classes) = try Self.samples(
            cube: cube.array, labels: labels.array, cubePath: cube.location, labelsPath: labels.location,
            ignoring: Set(ignored), classNames: names?.names, classNamesFile: classNamesFile ?? "")
        var sources = [cube.source.record, labels.source.record]
        if let names { sources.append(names.source.record) }
        let provenance = Provenance(
            kind: "hsi", sources: sources, commandLine: commandLine, toolVersion: toolVersion, createdAt: createdAt)
        var extra: [String: DatasetAttributeValue] = ["image_shape": .ints([cube.array.shape[0], cube.array.shape[1]])]
        if !ignored.isEmpty { extra["ignored_labels"] = .ints(Set(ignored).sorted().map { Int($0) }) }
        return try DatasetPreparation.prepare(
            samples: consume samples, classes: classes, plan: plan, normalization: normalization,
            provenance: provenance,
            featureSource: cube.location, labelSource: labels.location, extraAttributes: extra, storage: storage)
    }
}
