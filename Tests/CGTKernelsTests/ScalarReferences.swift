import CGTKernels
import CGTTestSupport
import Foundation
import XCTest

// Plain scalar twins of the kernels, written from the formulas (mostly in Double) and sharing
// no code with `CGTKernels`, so that a kernel is only ever compared with an independent answer.

/// Sizes that leave a scalar tail after the 16-wide vector body (some have no full vector at all).
let tailSizes = [1, 7, 15, 17, 33, 257]
/// Multiples of 16: the vector body alone, with an empty tail.
let vectorSizes = [16, 32, 64, 256]
/// Both kinds, so that every kernel is run with and without a tail.
let kernelSizes = (tailSizes + vectorSizes).sorted()

extension Array where Element == Double {
    /// Rounds each value to Float, for comparison with a kernel's output.
    var floats: [Float] { map { Float($0) } }
}

extension Array where Element == Float {
    var doubles: [Double] { map { Double($0) } }
}

enum Reference {
    // MARK: Reductions

    static func sum(_ x: [Float]) -> Double {
        var total = 0.0
        for value in x { total += Double(value) }
        return total
    }

    static func absoluteSum(_ x: [Float]) -> Double {
        var total = 0.0
        for value in x { total += abs(Double(value)) }
        return total
    }

    static func dot(_ x: [Float], _ y: [Float]) -> Double {
        var total = 0.0
        for i in 0..<x.count { total += Double(x[i]) * Double(y[i]) }
        return total
    }

    // MARK: Batch normalisation

    /// The training-mode forward of batch normalisation over `[batch, channels, spatial]`, in Double.
    struct BatchNormForward {
        var mean: [Double]
        /// The biased batch variance (divided by m).
        var variance: [Double]
        var invStd: [Double]
        var normalized: [Double]
        var output: [Double]
    }

    static func batchNormForward(
        _ x: [Double], batch: Int, channels: Int, spatial: Int, gamma: [Double], beta: [Double], epsilon: Double
    ) -> BatchNormForward {
        let m = Double(batch * spatial)
        var mean = [Double](repeating: 0, count: channels)
        var variance = [Double](repeating: 0, count: channels)
        for j in 0..<channels {
            var total = 0.0
            for n in 0..<batch { for i in 0..<spatial { total += x[(n * channels + j) * spatial + i] } }
            mean[j] = total / m
            var squares = 0.0
            for n in 0..<batch {
                for i in 0..<spatial {
                    let d = x[(n * channels + j) * spatial + i] - mean[j]
                    squares += d * d
                }
            }
            variance[j] = squares / m
        }
        let invStd = (0..<channels).map { 1 / (variance[$0] + epsilon).squareRoot() }
        var normalized = [Double](repeating: 0, count: x.count)
        var output = [Double](repeating: 0, count: x.count)
        for n in 0..<batch {
            for j in 0..<channels {
                for i in 0..<spatial {
                    let index = (n * channels + j) * spatial + i
                    normalized[index] = (x[index] - mean[j]) * invStd[j]
                    output[index] = normalized[index] * gamma[j] + beta[j]
                }
            }
        }
        return BatchNormForward(mean: mean, variance: variance, invStd: invStd, normalized: normalized, output: output)
    }

    /// The textbook batch-norm backward: dgamma = sum dy xhat, dbeta = sum dy,
    /// dx = gamma invStd / m (m dy - dbeta - xhat dgamma).
    static func batchNormBackward(
        dy: [Double], normalized xhat: [Double], batch: Int, channels: Int, spatial: Int,
        gamma: [Double], invStd: [Double]
    ) -> (dx: [Double], dgamma: [Double], dbeta: [Double]) {
        let m = Double(batch * spatial)
        var dgamma = [Double](repeating: 0, count: channels)
        var dbeta = [Double](repeating: 0, count: channels)
        for n in 0..<batch {
            for j in 0..<channels {
                for i in 0..<spatial {
                    let index = (n * channels + j) * spatial + i
                    dbeta[j] += dy[index]
                    dgamma[j] += dy[index] * xhat[index]
                }
            }
        }
        var dx = [Double](repeating: 0, count: dy.count)
        for n in 0..<batch {
            for j in 0..<channels {
                for i in 0..<spatial {
                    let index = (n * channels + j) * spatial + i
                    dx[index] = gamma[j] * invStd[j] / m * (m * dy[index] - dbeta[j] - xhat[index] * dgamma[j])
                }
            }
        }
        return (dx, dgamma, dbeta)
    }

    // MARK: Softmax

    /// Softmax of one row with the maximum subtracted first, in Double.
    static func softmax(_ z: [Double]) -> [Double] {
        let top = z.max()!
        let e = z.map { Foundation.exp($0 - top) }
        let total = e.reduce(0, +)
        return e.map { $0 / total }
    }

    /// -log softmax(z)[label] = log sum exp(z - max) - (z[label] - max), in Double.
    static func crossEntropy(_ z: [Double], label: Int) -> Double {
        let top = z.max()!
        var total = 0.0
        for value in z { total += Foundation.exp(value - top) }
        return Foundation.log(total) - (z[label] - top)
    }

    /// The first index of the largest value.
    static func argmax(_ z: [Float]) -> Int {
        var best = 0
        for c in 1..<z.count where z[c] > z[best] { best = c }
        return best
    }

    // MARK: Random numbers

    /// SplitMix64 (Steele, Lea and Flood 2014) as a stateful stream.
    struct SplitMix64 {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &+ 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// xoshiro256** from Blackman and Vigna's reference C code, on an array of four words.
    struct Xoshiro256StarStar {
        var s: [UInt64]

        init(state: [UInt64]) { s = state }

        /// Seeded as the paper recommends: the four words are the first outputs of SplitMix64(seed).
        init(seed: UInt64) {
            var seeder = SplitMix64(state: seed)
            s = (0..<4).map { _ in seeder.next() }
        }

        static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

        mutating func next() -> UInt64 {
            let result = Self.rotl(s[1] &* 5, 7) &* 9
            let t = s[1] << 17
            s[2] ^= s[0]
            s[3] ^= s[1]
            s[1] ^= s[2]
            s[0] ^= s[3]
            s[2] ^= t
            s[3] = Self.rotl(s[3], 45)
            return result
        }
    }

    /// The dropout decision hash, one value at a time: SplitMix64's finaliser derives the row key
    /// from (layer key, sample id), and two rounds of MurmurHash3's 32-bit finaliser map
    /// (row key, feature) to 24 uniform bits.
    static func dropoutUniform(layerKey: UInt64, sampleID: Int64, feature: Int) -> Float {
        func finalize64(_ value: UInt64) -> UInt64 {
            var z = value &+ 0x9E37_79B9_7F4A_7C15
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        func finalize32(_ value: UInt32) -> UInt32 {
            var h = value
            h ^= h >> 16
            h = h &* 0x85EB_CA6B
            h ^= h >> 13
            h = h &* 0xC2B2_AE35
            h ^= h >> 16
            return h
        }
        let rowKey = finalize64(layerKey ^ finalize64(UInt64(bitPattern: sampleID)))
        let low = UInt32(truncatingIfNeeded: rowKey)
        let high = UInt32(truncatingIfNeeded: rowKey >> 32)
        let hash = finalize32(finalize32((UInt32(truncatingIfNeeded: feature) &* 0x9E37_79B9) ^ low) ^ high)
        return Float(hash >> 8) / 16_777_216
    }
}
