import CGTData
import CGTTestSupport
import XCTest

/// Per-channel normalisation against a plain scalar computation.
final class NormalizationTests: XCTestCase {
    /// Samples of shape [channels, inner] from a seed.
    let channels = 3, inner = 4, samples = 7
    lazy var features = Fixtures.normals(samples * channels * inner, seed: 9, scale: 5).map { $0 + 2 }

    /// Every value of channel `c`, over all samples and inner positions.
    func values(ofChannel c: Int) -> [Double] {
        (0..<samples).flatMap { s in (0..<inner).map { i in Double(features[(s * channels + c) * inner + i]) } }
    }

    func testMinMax() {
        let fitted = Normalization.fit(.minmax, features: features, featureShape: [channels, inner])
        for c in 0..<channels {
            let v = values(ofChannel: c)
            XCTAssertEqual(fitted.offset[c], v.min()!)
            XCTAssertEqual(fitted.scale[c], v.max()! - v.min()!, accuracy: 1e-12)
        }
        var normalised = features
        fitted.apply(to: &normalised, featureShape: [channels, inner])
        XCTAssertEqual(normalised.min()!, 0)
        XCTAssertEqual(normalised.max()!, 1, accuracy: 1e-6)
    }

    func testZScoreUsesThePopulationStandardDeviation() {
        let fitted = Normalization.fit(.zscore, features: features, featureShape: [channels, inner])
        for c in 0..<channels {
            let v = values(ofChannel: c)
            let mean = v.reduce(0, +) / Double(v.count)
            let std = (v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(v.count)).squareRoot()
            XCTAssertEqual(fitted.offset[c], mean, accuracy: 1e-9)
            XCTAssertEqual(fitted.scale[c], std, accuracy: 1e-9)
        }
        var normalised = features
        fitted.apply(to: &normalised, featureShape: [channels, inner])
        let index = (2 * channels + 1) * inner + 3
        XCTAssertEqual(normalised[index], Float((Double(features[index]) - fitted.offset[1]) / fitted.scale[1]))
    }

    func testAConstantChannelBecomesZero() {
        let constant: [Float] = [5, 1, 5, 2, 5, 3]
        for method in [Normalization.Method.minmax, .zscore] {
            let fitted = Normalization.fit(method, features: constant, featureShape: [2])
            XCTAssertEqual(fitted.scale[0], 1)
            var normalised = constant
            fitted.apply(to: &normalised, featureShape: [2])
            XCTAssertEqual([normalised[0], normalised[2], normalised[4]], [0, 0, 0])
        }
        let fitted = Normalization.fit(.minmax, features: constant, featureShape: [2])
        XCTAssertEqual(
            fitted.attributes["normalization_max"], .doubles([5, 3]), "the fitted maximum, not offset + scale")
    }
}
