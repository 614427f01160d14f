import CGTKernels
import CGTTestSupport
import Foundation
import XCTest

final class FastMathTests: XCTestCase {
    /// Applies the vector exp to `inputs`, 16 at a time (the last vector padded with zeros).
    private func vectorExp(_ inputs: [Float]) -> [Float] {
        var out = [Float](repeating: .nan, count: inputs.count)
        var i = 0
        while i < inputs.count {
            var v = FloatVector(repeating: 0)
            for lane in 0..<min(16, inputs.count - i) { v[lane] = inputs[i + lane] }
            let e = FastMath.exp(v)
            for lane in 0..<min(16, inputs.count - i) { out[i + lane] = e[lane] }
            i += 16
        }
        return out
    }

    private func largestRelativeError(_ inputs: [Float], _ outputs: [Float]) -> (error: Double, at: Float) {
        var worst = (error: 0.0, at: Float.nan)
        for (x, y) in zip(inputs, outputs) {
            let exact = Foundation.exp(Double(x))
            let error = abs(Double(y) - exact) / exact
            if !(error <= worst.error) { worst = (error, x) }
        }
        return worst
    }

    /// exp has relative error <= 2e-7 against libm's Double exp on a grid of step 2^-10 over [-80, 80].
    func testExpRelativeErrorOnDenseGrid() {
        let inputs = (-80 * 1024...80 * 1024).map { Float($0) / 1024 }
        let worst = largestRelativeError(inputs, vectorExp(inputs))
        XCTAssertLessThanOrEqual(worst.error, 2e-7, "worst at x = \(worst.at)")
    }

    /// The same bound holds at the ends of the documented range [-87, 88] and between grid points.
    func testExpRelativeErrorNearTheEndsOfItsRange() {
        var inputs = (0...2048).map { -87 + Float($0) / 1024 }
        inputs += (0...2048).map { 86 + Float($0) / 1024 }
        inputs += Fixtures.uniforms(4096, seed: 7, -87, 88)
        let worst = largestRelativeError(inputs, vectorExp(inputs))
        XCTAssertLessThanOrEqual(worst.error, 2e-7, "worst at x = \(worst.at)")
    }

    /// The one-value exp agrees with libm to the same bound and with the vector lanes exactly.
    func testScalarExpMatchesLibmAndTheVectorPath() {
        let inputs = Fixtures.uniforms(513, seed: 8, -80, 80) + [0, 1, -1]
        let scalar = inputs.map { FastMath.exp($0) }
        let worst = largestRelativeError(inputs, scalar)
        XCTAssertLessThanOrEqual(worst.error, 2e-7, "worst at x = \(worst.at)")
        assertExactlyEqual(scalar, vectorExp(inputs))
        XCTAssertEqual(FastMath.exp(Float(0)), 1)
    }

    /// Inputs beyond the clamp give finite, positive values: about 1.2e-38 below, about 3.3e38 above.
    func testExpClampsExtremeInputsToFiniteValues() {
        for x: Float in [-.infinity, -.greatestFiniteMagnitude, -1e30, -1000, -100, -87.3] {
            let y = FastMath.exp(x)
            XCTAssertTrue(y.isFinite && y > 0 && y < 1.3e-38, "exp(\(x)) = \(y)")
        }
        for x: Float in [88.5, 88.7, 100, 1000, .greatestFiniteMagnitude, .infinity] {
            let y = FastMath.exp(x)
            XCTAssertTrue(y.isFinite && y > 1e38, "exp(\(x)) = \(y)")
        }
    }

    /// A NaN lane gives NaN (so a diverging loss reaches the non-finite check) and leaves the
    /// other lanes alone.
    func testExpOfNaNIsNaN() {
        var v = FloatVector(repeating: 1)
        v[3] = .nan
        v[9] = -.nan
        let e = FastMath.exp(v)
        XCTAssertTrue(e[3].isNaN && e[9].isNaN)
        for lane in 0..<16 where lane != 3 && lane != 9 { XCTAssertEqual(e[lane], FastMath.exp(Float(1))) }
        XCTAssertTrue(FastMath.sigmoid(FloatVector(repeating: .nan))[0].isNaN)
    }

    /// sigmoid matches 1 / (1 + e^-x) in Double over [-30, 30], and saturates cleanly beyond.
    func testSigmoidMatchesScalarFormula() {
        let inputs = (-30 * 64...30 * 64).map { Float($0) / 64 }
        var i = 0
        while i < inputs.count {
            var v = FloatVector(repeating: 0)
            let lanes = min(16, inputs.count - i)
            for lane in 0..<lanes { v[lane] = inputs[i + lane] }
            let s = FastMath.sigmoid(v)
            for lane in 0..<lanes {
                let x = Double(inputs[i + lane])
                let expected = 1 / (1 + Foundation.exp(-x))
                assertClose(s[lane], Float(expected), relative: 5e-7, absolute: 1e-7, "x = \(x)")
            }
            i += 16
        }
        XCTAssertEqual(FastMath.sigmoid(FloatVector(repeating: 0))[0], 0.5)
        var far = FloatVector(repeating: 0)
        far[0] = -200
        far[1] = 200
        far[2] = -60
        far[3] = 60
        let saturated = FastMath.sigmoid(far)
        XCTAssertTrue(saturated[0] >= 0 && saturated[0] < 1e-30, "sigmoid(-200) = \(saturated[0])")
        XCTAssertEqual(saturated[1], 1)
        XCTAssertTrue(saturated[2] >= 0 && saturated[2] < 1e-25, "sigmoid(-60) = \(saturated[2])")
        XCTAssertEqual(saturated[3], 1)
    }
}
