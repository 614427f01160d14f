import CGTKernels
import CGTTestSupport
import XCTest

final class DropoutKernelTests: XCTestCase {
    private let layerKey: UInt64 = 0x0123_4567_89AB_CDEF

    private func mask(ids: [Int64], features: Int, p: Float, key: UInt64? = nil) -> [Float] {
        var mask = [Float](repeating: .nan, count: ids.count * features)
        ids.withUnsafeBufferPointer { idp in
            mask.withUnsafeMutableBufferPointer {
                DropoutKernels.fillMask(
                    $0, sampleIDs: idp, features: features, dropProbability: p, layerKey: key ?? layerKey)
            }
        }
        return mask
    }

    private let ids: [Int64] = [0, 1, 17, -5, .max, .min, 123_456_789]

    /// Every mask entry is the scalar hash's decision: 0 when u < p, else 1 / (1 - p).
    func testMaskMatchesScalarHashReference() {
        let p: Float = 0.25
        let keep: Float = 1 / (1 - p)
        for features in kernelSizes {
            let m = mask(ids: ids, features: features, p: p)
            var expected = [Float](repeating: 0, count: m.count)
            for (n, id) in ids.enumerated() {
                for f in 0..<features {
                    let u = Reference.dropoutUniform(layerKey: layerKey, sampleID: id, feature: f)
                    expected[n * features + f] = u < p ? 0 : keep
                }
            }
            assertExactlyEqual(m, expected, "features \(features)")
        }
    }

    /// Mask values are exactly 0 or 1 / (1 - p); with p = 0 nothing is dropped.
    func testMaskValuesAreZeroOrInvertedKeepProbability() {
        for p: Float in [0, 0.1, 0.5, 0.9] {
            let keep: Float = 1 / (1 - p)
            let m = mask(ids: ids, features: 33, p: p)
            XCTAssertTrue(m.allSatisfy { $0 == 0 || $0 == keep }, "p = \(p)")
            if p == 0 { XCTAssertTrue(m.allSatisfy { $0 == 1 }) }
        }
    }

    /// A sample's mask row depends only on (layer key, sample id, feature), not on its row in the
    /// batch or on which other samples share the batch.
    func testMaskRowDependsOnlyOnSampleID() {
        let features = 37
        let first: [Int64] = [3, 8, 21, 99]
        let second: [Int64] = [99, 1000, 3, 7, 21, 8, 42]
        let a = mask(ids: first, features: features, p: 0.4)
        let b = mask(ids: second, features: features, p: 0.4)
        for (n, id) in first.enumerated() {
            let m = second.firstIndex(of: id)!
            assertExactlyEqual(
                Array(a[n * features..<(n + 1) * features]), Array(b[m * features..<(m + 1) * features]),
                "sample \(id)")
            let alone = mask(ids: [id], features: features, p: 0.4)
            assertExactlyEqual(alone, Array(a[n * features..<(n + 1) * features]), "sample \(id) alone")
        }
        // Different samples do not share a row.
        XCTAssertNotEqual(Array(a[0..<features]), Array(a[features..<2 * features]))
    }

    /// Another layer key gives another mask: about 2 p (1 - p) of the entries disagree.
    func testDifferentLayerKeysGiveIndependentMasks() {
        let p: Float = 0.5
        let sampleIDs = (0..<200).map { Int64($0) }
        let a = mask(ids: sampleIDs, features: 50, p: p, key: 1)
        let b = mask(ids: sampleIDs, features: 50, p: p, key: 2)
        let disagreements = zip(a, b).filter { $0 != $1 }.count
        let fraction = Double(disagreements) / Double(a.count)
        XCTAssertEqual(fraction, 0.5, accuracy: 0.03)
    }

    /// Over 100k values the dropped fraction is within four standard errors of p.
    func testDropFractionMatchesProbability() {
        let sampleIDs = (0..<2_000).map { Int64($0) * 7919 }
        let features = 50
        for p: Float in [0.1, 0.3] {
            let m = mask(ids: sampleIDs, features: features, p: p)
            let count = Double(m.count)
            let dropped = Double(m.filter { $0 == 0 }.count)
            let standardError = (Double(p) * (1 - Double(p)) / count).squareRoot()
            XCTAssertEqual(dropped / count, Double(p), accuracy: 4 * standardError, "p = \(p)")
        }
    }

    /// uniform(rowKey:feature:) is the number the mask kernel thresholded, and it matches the scalar hash.
    func testUniformIsTheValueTheMaskUsed() {
        let p: Float = 0.35
        let keep: Float = 1 / (1 - p)
        let features = 21
        let m = mask(ids: ids, features: features, p: p)
        for (n, id) in ids.enumerated() {
            let key = DropoutKernels.rowKey(layerKey: layerKey, sampleID: id)
            for f in 0..<features {
                let u = DropoutKernels.uniform(rowKey: key, feature: f)
                XCTAssertEqual(u, Reference.dropoutUniform(layerKey: layerKey, sampleID: id, feature: f))
                XCTAssertTrue(u >= 0 && u < 1)
                XCTAssertEqual(m[n * features + f], u >= p ? keep : 0, "sample \(id), feature \(f)")
            }
        }
    }

    /// The uniforms are spread evenly over [0, 1): mean 1/2 and variance 1/12 within a few standard errors.
    func testUniformsHaveUniformMoments() {
        let key = DropoutKernels.rowKey(layerKey: layerKey, sampleID: 77)
        let n = 50_000
        var total = 0.0
        var squares = 0.0
        for f in 0..<n {
            let u = Double(DropoutKernels.uniform(rowKey: key, feature: f))
            total += u
            squares += u * u
        }
        let mean = total / Double(n)
        let variance = squares / Double(n) - mean * mean
        XCTAssertEqual(mean, 0.5, accuracy: 4 * (1.0 / 12 / Double(n)).squareRoot())
        XCTAssertEqual(variance, 1.0 / 12, accuracy: 0.003)
    }
}
