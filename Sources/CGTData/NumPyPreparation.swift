import Foundation

/// Features `X` `[N, features...]` and integer labels `y` `[N]` from NumPy arrays.
///
/// Labels become classes as for a ground-truth map (`ClassMapping.fromIntegers`): the
/// distinct ids left after dropping ignored ones, in ascending order. With `--test-x` and
/// `--test-y` the source's own test split is used; its labels must be ids seen in training.
public enum NumPyPreparation {
    /// Samples from one pair of arrays; `mapping` (from the training arrays) maps test labels.
    static func samples(
        x: NumPyInput, y: NumPyInput, ignoring ignored: Set<Int64>, mapping: ClassMapping?,
        classNames: [String]?, classNamesFile: String
    ) throws -> (samples: LabelledSamples, classes: ClassMapping) {
        let (kept, labels, classes, featureShape) = try labelling(
            xShape: x.array.shape, xLocation: x.location, y: y.array, yLocation: y.location, ignoring: ignored,
            mapping: mapping,
            classNames: classNames, classNamesFile: classNamesFile)
        let width = featureShape.reduce(1, *)
        let ids = y.array.shape[0]
        let all = x.array.floatValues()
        let features: [Float]
        if kept.count == ids {
            features = all
        } else {
            var gathered = [Float](repeating: 0, count: kept.count * width)
            for (row, index) in kept.enumerated() {
                gathered.replaceSubrange(
                    (row * width)..<((row + 1) * width), with: all[(index * width)..<((index + 1) * width)])
            }
            features = gathered
        }
        let samples = LabelledSamples(
            features: features, featureShape: featureShape, labels: labels, sourceIndex: kept.map { Int64($0) })
        if let bad = samples.firstNonFinite() {
            throw DatasetError(
                file: x.location, object: "",
                "sample \(kept[bad.sample]), feature \(bad.feature) is \(features[bad.sample * width + bad.feature]), not a finite float32"
            )
        }
        return (samples, classes)
    }

    /// The samples of a pair of arrays that are kept, their class ids and the feature shape:
    /// checks the shapes of X (`xShape`, read from `xLocation`) and y, drops ignored labels and
    /// maps the rest to classes (`mapping`, from the training arrays, for test labels).
    static func labelling(
        xShape: [Int], xLocation: String, y: NumericArray, yLocation: String, ignoring ignored: Set<Int64>,
        mapping: ClassMapping?,
        classNames: [String]?, classNamesFile: String
    ) throws -> (kept: [Int], labels: [Int32], classes: ClassMapping, featureShape: [Int]) {
        guard xShape.count >= 2 else {
            throw DatasetError(file: xLocation, object: "", "X has shape \(xShape), expected [samples, features...]")
        }
        guard y.shape.count == 1 || (y.shape.count == 2 && y.shape[1] == 1) else {
            throw DatasetError(file: yLocation, object: "", "y has shape \(y.shape), expected [samples]")
        }
        guard y.shape[0] == xShape[0] else {
            throw DatasetError(
                file: yLocation, object: "",
                "y holds \(y.shape[0]) labels but X (\(xLocation)) holds \(xShape[0]) samples")
        }
        let featureShape = Array(xShape.dropFirst())
        guard featureShape.allSatisfy({ $0 > 0 }) else {
            throw DatasetError(file: xLocation, object: "", "X has no features (shape \(xShape))")
        }
        if let problem = DatasetLayout.featureShapeProblem(featureShape) {
            throw DatasetError(file: xLocation, object: "", "X has shape \(xShape): \(problem)")
        }
        let ids = try y.integerValues(file: yLocation)
        let kept = ids.indices.filter { !ignored.contains(ids[$0]) }
        guard !kept.isEmpty else {
            throw DatasetError(file: yLocation, object: "", "no samples left after dropping the ignored labels")
        }
        let keptIDs = kept.map { ids[$0] }

        let classes: ClassMapping
        let labels: [Int32]
        if let mapping {
            var mapped: [Int32] = []
            mapped.reserveCapacity(keptIDs.count)
            for (position, id) in keptIDs.enumerated() {
                guard let label = mapping.classID(ofOriginal: id) else {
                    throw DatasetError(
                        file: yLocation, object: "",
                        "label \(id) of sample \(kept[position]) does not occur in the training labels")
                }
                mapped.append(label)
            }
            (classes, labels) = (mapping, mapped)
        } else {
            (classes, labels) = try ClassMapping.fromIntegers(keptIDs, names: classNames, namesFile: classNamesFile)
            guard classes.count >= 2 else {
                throw DatasetError(
                    file: yLocation, object: "", "only one class (label \(keptIDs[0])) is left; cgt needs at least 2")
            }
        }
        return (kept, labels, classes, featureShape)
    }

    public static func prepare(
        x: String, y: String, testX: String?, testY: String?, ignoring ignored: [Int64], classNamesFile: String?,
        normalization: NormalizationRequest, plan: SplitPlan, commandLine: String, toolVersion: String,
        storage: FeatureStorage = .float32, createdAt: Date = Date()
    ) throws -> PreparedDataset {
        let names = try classNamesFile.map { try ClassMapping.readNames($0) }
        let trainX = try NumPyInput.load(x)
        let trainY = try NumPyInput.load(y)
        let (samples, classes) = try Self.samples(
            x: trainX, y: trainY, ignoring: Set(ignored), mapping: nil,
            classNames: names?.names, classNamesFile: classNamesFile ?? "")
        var inputs = [trainX, trainY]
        var test: LabelledSamples?
        var testLocation: String?
        if let testX, let testY {
            let ownX = try NumPyInput.load(testX)
            let ownY = try NumPyInput.load(testY)
            let own = try Self.samples(
                x: ownX, y: ownY, ignoring: Set(ignored), mapping: classes, classNames: nil, classNamesFile: "")
            guard own.samples.featureShape == samples.featureShape else {
                throw DatasetError(
                    file: ownX.location, object: "",
                    "test samples have shape \(own.samples.featureShape), training samples \(samples.featureShape)")
            }
            test = own.samples
            testLocation = ownX.location
            inputs += [ownX, ownY]
        }
        var sources: [SourceRecord] = []
        for input in inputs where !sources.contains(where: { $0.path == input.source.path }) {
            sources.append(input.source.record)
        }
        if let names { sources.append(names.source.record) }
        let provenance = Provenance(
            kind: "npy", sources: sources, commandLine: commandLine, toolVersion: toolVersion, createdAt: createdAt)
        var extra: [String: DatasetAttributeValue] = [:]
        if !ignored.isEmpty { extra["ignored_labels"] = .ints(Set(ignored).sorted().map { Int($0) }) }
        return try DatasetPreparation.prepare(
            samples: consume samples, test: consume test, classes: classes, plan: plan, normalization: normalization,
            provenance: provenance, featureSource: trainX.location, testFeatureSource: testLocation,
            labelSource: trainY.location, extraAttributes: extra, storage: storage)
    }
}
