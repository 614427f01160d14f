/// Dropout masks from a counter-based generator.
///
/// The keep/drop decision for a value is a pure function of (key, sample id, feature index),
/// so the same seed gives the same mask whatever the batch composition, thread or rank: a
/// sample seen by rank 3 of 4 is dropped exactly as it would be in a 1-rank run.
public enum DropoutKernels {
    /// A 64-bit mixer (SplitMix64's finaliser), used to derive per-row keys.
    @inlinable
    public static func mix64(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// MurmurHash3's 32-bit finaliser on 16 lanes.
    @inlinable @inline(__always)
    internal static func mix32(_ value: SIMD16<UInt32>) -> SIMD16<UInt32> {
        var h = value
        h ^= h &>> 16
        h &*= 0x85EB_CA6B
        h ^= h &>> 13
        h &*= 0xC2B2_AE35
        h ^= h &>> 16
        return h
    }

    /// The uniform number in [0, 1) for one (row key, feature) pair; the scalar twin of the vector path.
    @inlinable
    public static func uniform(rowKey: UInt64, feature: Int) -> Float {
        let lanes = SIMD16<UInt32>(repeating: UInt32(truncatingIfNeeded: feature))
        return uniforms(rowKey: rowKey, firstFeatures: lanes)[0]
    }

    @inlinable @inline(__always)
    internal static func uniforms(rowKey: UInt64, firstFeatures features: SIMD16<UInt32>) -> FloatVector {
        let low = UInt32(truncatingIfNeeded: rowKey)
        let high = UInt32(truncatingIfNeeded: rowKey >> 32)
        let h = mix32(mix32(features &* 0x9E37_79B9 ^ low) ^ high)
        return unitInterval(topBitsOf: h)
    }

    /// Float(h >> 8) / 2^24 exactly, without an integer-to-float conversion: the standard
    /// library converts SIMD vectors lane by lane, which pulls the whole hash down to 128-bit
    /// operations. The top 23 bits become the mantissa of a float in [1, 2) (minus 1: exact),
    /// and bit 8 adds 2^-24 (exact: the sum has at most 24 significant bits).
    @inlinable @inline(__always)
    internal static func unitInterval(topBitsOf h: SIMD16<UInt32>) -> FloatVector {
        let coarse = unsafeBitCast((h &>> 9) | 0x3F80_0000, to: FloatVector.self) - 1
        let fine = unsafeBitCast((h &>> 8 & 1) &* 0x3380_0000, to: FloatVector.self)
        return coarse + fine
    }

    /// The key of one sample's row: all randomness of a layer in an epoch flows from `layerKey`.
    @inlinable
    public static func rowKey(layerKey: UInt64, sampleID: Int64) -> UInt64 {
        mix64(layerKey ^ mix64(UInt64(bitPattern: sampleID)))
    }

    /// Fills `mask[n, f]` with 0 (dropped, probability p) or 1 / (1 - p) (kept: inverted dropout).
    @inlinable
    public static func fillMask(
        _ mask: UnsafeMutableBufferPointer<Float>, sampleIDs: UnsafeBufferPointer<Int64>, features: Int,
        dropProbability p: Float, layerKey: UInt64
    ) {
        precondition(p >= 0 && p < 1, "dropout probability \(p) is outside [0, 1)")
        precondition(mask.count >= sampleIDs.count * features, "dropout mask too small")
        let keep = FloatVector(repeating: 1 / (1 - p))
        let zero = FloatVector()
        let threshold = FloatVector(repeating: p)
        let step = SIMD16<UInt32>(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
        let out = mask.baseAddress!
        for (n, id) in sampleIDs.enumerated() {
            let key = rowKey(layerKey: layerKey, sampleID: id)
            let row = out + n * features
            var f = 0
            while f < features {
                let u = uniforms(rowKey: key, firstFeatures: step &+ UInt32(truncatingIfNeeded: f))
                let values = zero.replacing(with: keep, where: u .>= threshold)
                if f + 16 <= features {
                    storeVector(values, row + f)
                } else {
                    for lane in 0..<(features - f) { row[f + lane] = values[lane] }
                }
                f &+= 16
            }
        }
    }
}
