/// Labelled samples read from a source, before splitting and normalisation.
public struct LabelledSamples: Sendable {
    /// `[count] + featureShape` row-major, as read (not yet normalised).
    public var features: [Float]
    public var featureShape: [Int]
    /// Class ids in `0..<classes.count`.
    public var labels: [Int32]
    /// The row of each sample in its source (for a hyperspectral cube, the pixel row * W + column).
    public var sourceIndex: [Int64]

    public init(features: [Float], featureShape: [Int], labels: [Int32], sourceIndex: [Int64]) {
        precondition(
            labels.count == sourceIndex.count && features.count == labels.count * featureShape.reduce(1, *),
            "\(features.count) feature values, \(labels.count) labels, \(sourceIndex.count) indices for shape \(featureShape)"
        )
        self.features = features
        self.featureShape = featureShape
        self.labels = labels
        self.sourceIndex = sourceIndex
    }

    public var count: Int { labels.count }

    /// The samples at `indices` (ascending), sharing storage when that is all of them.
    func subset(_ indices: [Int]) -> LabelledSamples {
        if indices.count == count { return self }
        let width = featureShape.reduce(1, *)
        var features = [Float](repeating: 0, count: indices.count * width)
        features.withUnsafeMutableBufferPointer { destination in
            self.features.withUnsafeBufferPointer { source in
                for (row, index) in indices.enumerated() {
                    (destination.baseAddress! + row * width).update(
                        from: source.baseAddress! + index * width, count: width)
                }
            }
        }
        return LabelledSamples(
            features: features, featureShape: featureShape, labels: indices.map { labels[$0] },
            sourceIndex: indices.map { sourceIndex[$0] })
    }

    /// The first feature that is not an integer in 0...255 as (sample, feature offset, value), if any.
    func firstNonByte() -> (sample: Int, feature: Int, value: Float)? {
        let width = featureShape.reduce(1, *)
        return features.withUnsafeBufferPointer { x in
            for i in 0..<x.count where !DatasetPreparation.isByte(x[i]) {
                return (i / width, i % width, x[i])
            }
            return nil
        }
    }

    /// The first non-finite feature as (sample, feature offset), if any.
    func firstNonFinite() -> (sample: Int, feature: Int)? {
        let width = featureShape.reduce(1, *)
        return features.withUnsafeBufferPointer { x in
            for i in 0..<x.count where !x[i].isFinite { return (i / width, i % width) }
            return nil
        }
    }
}

/// Everything a dataset file will hold, ready for `DatasetWriter.write(_:to:)`.
public struct PreparedDataset: Sendable {
    public var classNames: [String]
    public var featureShape: [Int]
    /// In file order: train, validation (when not empty), test.
    public var splits: [DatasetSplit]
    public var sourceIndices: [DatasetSplitName: [Int64]]
    public var attributes: [String: DatasetAttributeValue]
    public var normalization: Normalization
    /// How `splits` hold the features: `float32`, normalised, or `uint8`, the source's values
    /// (the normalisation is applied when the file is read).
    public var storage: FeatureStorage

    public func split(_ name: DatasetSplitName) -> DatasetSplit? { splits.first { $0.name == name } }
}

/// How the features of a prepared file are normalised.
public enum NormalizationRequest: Sendable {
    /// Fit this method on the training split.
    case fit(Normalization.Method)
    /// Apply these constants.
    case fixed(Normalization)
}

/// The steps every source shares once its samples are read: split, check, normalise, describe.
public enum DatasetPreparation {
    /// Builds the splits and attributes of a dataset file.
    ///
    /// - Parameters:
    ///   - samples: all samples, or the training samples when the source has its own `test` split.
    ///   - test: the source's own test split, if it has one; then `plan`'s test fraction is
    ///     ignored and its validation fraction is of the training samples.
    ///   - featureSource, labelSource: the files named when features or classes are at fault
    ///     (`testFeatureSource` for the features of the source's own test split).
    ///   - storage: `uint8` keeps the source values (each must be an integer in 0...255) and
    ///     records the normalisation for the reader to apply.
    public static func prepare(
        samples: consuming LabelledSamples, test ownTest: consuming LabelledSamples? = nil, classes: ClassMapping,
        plan: SplitPlan,
        normalization request: NormalizationRequest, provenance: Provenance, featureSource: String,
        testFeatureSource: String? = nil, labelSource: String,
        extraAttributes: [String: DatasetAttributeValue] = [:], storage: FeatureStorage = .float32
    ) throws -> PreparedDataset {
        let featureShape = samples.featureShape
        let assignment = try assign(
            labels: samples.labels, ownTestCount: ownTest?.count, classes: classes, plan: plan, labelSource: labelSource
        )
        let hasOwnTest = ownTest != nil
        // Each split is normalised in place; handing over the caller's arrays (rather than
        // sharing them) keeps a 60,000-image training set from being copied to do so.
        var validation = samples.subset(assignment.validation)
        var test = ownTest.take() ?? samples.subset(assignment.test)
        var train: LabelledSamples
        if assignment.train.count == samples.count {
            train = consume samples
        } else {
            train = samples.subset(assignment.train)
        }

        let normalization: Normalization
        switch request {
        case .fit(let method):
            normalization = Normalization.fit(method, features: train.features, featureShape: featureShape)
        case .fixed(let constants): normalization = constants
        }
        switch storage {
        case .float32:
            normalization.apply(to: &train.features, featureShape: featureShape)
            normalization.apply(to: &validation.features, featureShape: featureShape)
            normalization.apply(to: &test.features, featureShape: featureShape)
        case .uint8:
            for (name, part) in [
                (DatasetSplitName.train, train), (.validation, validation), (.test, test),
            ] {
                guard let bad = part.firstNonByte() else { continue }
                throw notAByte(
                    file: name == .test ? testFeatureSource ?? featureSource : featureSource,
                    sourceIndex: part.sourceIndex[bad.sample], feature: bad.feature, value: bad.value)
            }
            try checkByteExtremes(normalization, featureShape: featureShape, featureSource: featureSource)
        }

        var splits: [DatasetSplit] = []
        var sourceIndices: [DatasetSplitName: [Int64]] = [:]
        for (name, part) in [
            (DatasetSplitName.train, train), (.validation, validation), (.test, test),
        ] where part.count > 0 {
            if let bad = part.firstNonFinite() {
                throw notFiniteAfterNormalisation(
                    file: name == .test ? testFeatureSource ?? featureSource : featureSource,
                    sourceIndex: part.sourceIndex[bad.sample], feature: bad.feature)
            }
            splits.append(
                DatasetSplit(
                    name: name, features: part.features, labels: part.labels,
                    sampleIDs: (0..<Int64(part.count)).map { $0 }, featureShape: featureShape))
            sourceIndices[name] = part.sourceIndex
        }

        let attributes = Self.attributes(
            provenance: provenance, normalization: normalization, hasOwnTest: hasOwnTest, plan: plan,
            classes: classes, extra: extraAttributes)
        return PreparedDataset(
            classNames: classes.names, featureShape: featureShape, splits: splits,
            sourceIndices: sourceIndices, attributes: attributes, normalization: normalization, storage: storage)
    }

    /// The samples of each split, `labels` split by `plan` (its test fraction ignored when the
    /// source has its own test split of `ownTestCount` samples; then `test` is empty), after
    /// checking every class keeps training samples and the test split is not empty.
    static func assign(
        labels: [Int32], ownTestCount: Int?, classes: ClassMapping, plan: SplitPlan, labelSource: String
    ) throws -> SplitAssignment {
        var splitPlan = plan
        if ownTestCount != nil { splitPlan.testFraction = .zero }
        let assignment = Splitter.split(labels: labels, classes: classes.count, plan: splitPlan)
        var trainCounts = [Int](repeating: 0, count: classes.count)
        for index in assignment.train { trainCounts[Int(labels[index])] += 1 }
        if let empty = trainCounts.firstIndex(of: 0) {
            throw DatasetError(
                file: labelSource, object: "",
                "class '\(classes.names[empty])' has no training samples after splitting (it has too few samples\(plan.stratified ? "" : "; --stratify keeps every class in training"))"
            )
        }
        guard (ownTestCount ?? assignment.test.count) > 0 else {
            throw DatasetError(
                file: labelSource, object: "",
                "the test split is empty (\(labels.count) samples, test fraction \(plan.testFraction))")
        }
        return assignment
    }

    /// Refuses a normalisation under which a byte the reader of a uint8 file may meet (0 or
    /// 255) is not finite.
    static func checkByteExtremes(_ normalization: Normalization, featureShape: [Int], featureSource: String) throws {
        let width = featureShape.reduce(1, *)
        var extremes = [Float](repeating: 0, count: 2 * width)
        for i in width..<(2 * width) { extremes[i] = 255 }
        normalization.apply(to: &extremes, featureShape: featureShape)
        if let bad = extremes.firstIndex(where: { !$0.isFinite }) {
            throw DatasetError(
                file: featureSource, object: "",
                "feature \(bad % width) is not finite after normalisation of the byte \(bad < width ? 0 : 255)")
        }
    }

    /// The file attributes of a prepared dataset: provenance, normalisation, splitting, labels.
    static func attributes(
        provenance: Provenance, normalization: Normalization, hasOwnTest: Bool, plan: SplitPlan,
        classes: ClassMapping, extra extraAttributes: [String: DatasetAttributeValue]
    ) -> [String: DatasetAttributeValue] {
        var attributes = provenance.attributes.merging(normalization.attributes) { $1 }
        if hasOwnTest {
            attributes["split_method"] = .string("source")
        } else {
            attributes["split_method"] = .string(plan.stratified ? "stratified" : "random")
            attributes["split_test_fraction"] = .double(plan.testFraction.value)
        }
        if !hasOwnTest || !plan.validationFraction.isZero {
            attributes["split_seed"] = .int(Int(truncatingIfNeeded: plan.seed))
            attributes["split_validation_fraction"] = .double(plan.validationFraction.value)
            attributes["split_stratified"] = .int(plan.stratified ? 1 : 0)
        }
        if let ids = classes.originalIDs { attributes["label_ids"] = .ints(ids.map { Int($0) }) }
        attributes.merge(extraAttributes) { $1 }
        return attributes
    }
}

extension DatasetPreparation {
    /// Whether `value` can be stored as a byte (`--storage uint8`): an integer in 0...255.
    static func isByte(_ value: Float) -> Bool { value >= 0 && value <= 255 && value.rounded(.towardZero) == value }

    /// The refusal of a feature that `--storage uint8` cannot store.
    static func notAByte(file: String, sourceIndex: Int64, feature: Int, value: Float) -> DatasetError {
        DatasetError(
            file: file, object: "",
            "sample at source index \(sourceIndex), feature \(feature) is \(value), not an integer in 0...255; --storage uint8 needs byte values (use --storage float32)"
        )
    }

    /// The refusal of a feature that normalisation made infinite or NaN.
    static func notFiniteAfterNormalisation(file: String, sourceIndex: Int64, feature: Int) -> DatasetError {
        DatasetError(
            file: file, object: "",
            "sample at source index \(sourceIndex), feature \(feature) is not finite after normalisation")
    }
}
