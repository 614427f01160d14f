#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Vectorised transcendental functions for the softmax and the gates.
///
/// The standard library has no vector `exp`; calling libm per lane costs more than the
/// matrix products of a small head.
public enum FastMath {
    /// e^x for each lane, with a relative error below 2e-7 on [-87, 88].
    ///
    /// Cephes' `expf`: x = n ln2 + r with |r| <= ln2/2, a degree-5 polynomial for e^r,
    /// and 2^n assembled in the exponent bits. Inputs are clamped to [-87.3, 88.376], so
    /// very negative inputs give about 1e-38 instead of 0, and n stays at most 127, so no
    /// lane overflows (e^88.376 is about 2.5e38, below Float's largest value). NaN gives NaN.
    @inlinable @inline(__always)
    public static func exp(_ x: FloatVector) -> FloatVector {
        // Compare-and-select rather than `clamped` and `rounded`: the standard library runs
        // those lane by lane on SIMD vectors (with a NaN check per lane), several times slower.
        let lower = FloatVector(repeating: -87.3)
        let upper = FloatVector(repeating: 88.376)
        let clamped = x.replacing(with: lower, where: x .< lower).replacing(with: upper, where: x .> upper)
        // Adding 1.5 * 2^23 rounds x log2(e) to the nearest integer (ties to even) and leaves it
        // in the low mantissa bits; subtracting it again gives n exactly.
        let shifted = clamped * 1.442_695_04 + roundingShift
        let n = shifted - roundingShift
        var r = clamped - n * 0.693_359_375
        r = r - n * -2.121_944_4e-4
        var p = FloatVector(repeating: 1.987_569_1e-4)
        p = p * r + 1.398_199_9e-3
        p = p * r + 8.333_452e-3
        p = p * r + 4.166_579_6e-2
        p = p * r + 1.666_666_5e-1
        p = p * r + 5.000_000_1e-1
        let er = p * (r * r) + r + 1
        // 2^n in the exponent bits: n + 127 taken from the mantissa of `shifted` (whose exponent
        // field is that of 1.5 * 2^23), no float-to-integer conversion (also lane by lane).
        let biased = (unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- roundingShiftBits &+ 127) &<< 23
        let scale = unsafeBitCast(biased, to: FloatVector.self)
        return er * scale
    }

    /// 1.5 * 2^23: a float in [2^23, 2^24) has no fraction bits, so adding it rounds to an integer.
    @inlinable static var roundingShift: Float { 12_582_912 }
    /// The bit pattern of `roundingShift`.
    @inlinable static var roundingShiftBits: Int32 { 0x4B40_0000 }

    /// 1 / (1 + e^-x) for each lane.
    @inlinable @inline(__always)
    public static func sigmoid(_ x: FloatVector) -> FloatVector {
        1 / (1 + exp(-x))
    }

    /// e^x for one value, through the vector path so that scalar tails round the same way.
    @inlinable
    public static func exp(_ x: Float) -> Float {
        exp(FloatVector(repeating: x))[0]
    }

    /// The natural logarithm of one value (used once per row, so libm's is fast enough).
    @inlinable
    public static func log(_ x: Float) -> Float { logf(x) }
}
