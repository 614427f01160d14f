import CGTRandom

/// A labelled problem made from a seed, for trying cgt without downloading anything and for tests.
///
/// Each class is a Gaussian cloud around its own centre. A third of the samples lie close to
/// their centre (easy: an early exit should take them), the rest are spread further (hard),
/// so early exits have something to decide.
public enum SyntheticDataset {
    public static func make(
        features: Int, classes: Int, trainCount: Int, testCount: Int, seed: UInt64, spread: Float = 1.0
    ) -> (train: DatasetSplit, test: DatasetSplit, classNames: [String]) {
        precondition(
            features > 0 && classes >= 2 && trainCount > 0 && testCount > 0,
            "synthetic data needs positive sizes and 2+ classes")
        var generator = SeededGenerator(seed: seed, stream: 7)
        let centres = (0..<(classes * features)).map { _ in generator.normal() * 1.5 }
        func split(_ name: DatasetSplitName, _ count: Int) -> DatasetSplit {
            var x = [Float](repeating: 0, count: count * features)
            var y = [Int32](repeating: 0, count: count)
            for i in 0..<count {
                let label = Int(generator.next() % UInt64(classes))
                y[i] = Int32(label)
                let scale = (i % 3 == 0 ? 0.5 : 2.0) * spread
                for f in 0..<features {
                    x[i * features + f] = centres[label * features + f] + scale * generator.normal()
                }
            }
            return DatasetSplit(
                name: name, features: x, labels: y, sampleIDs: (0..<count).map { Int64($0) }, featureShape: [features])
        }
        let train = split(.train, trainCount)
        let test = split(.test, testCount)
        return (train, test, (0..<classes).map { "class \($0)" })
    }
}
