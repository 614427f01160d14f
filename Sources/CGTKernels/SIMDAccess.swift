/// The vector width every kernel is written for: 16 floats fill one AVX-512 register
/// and two AVX2 registers.
public typealias FloatVector = SIMD16<Float>

@inlinable @inline(__always)
internal func loadVector(_ pointer: UnsafePointer<Float>) -> FloatVector {
    UnsafeRawPointer(pointer).loadUnaligned(as: FloatVector.self)
}

@inlinable @inline(__always)
internal func storeVector(_ value: FloatVector, _ pointer: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(pointer).storeBytes(of: value, as: FloatVector.self)
}

/// The number of elements handled by full vectors; the rest is the scalar tail.
@inlinable @inline(__always)
internal func vectorizedPrefix(_ count: Int) -> Int { count & ~(FloatVector.scalarCount - 1) }

/// max(v, 0) for each lane, as `Swift.max(x, 0)` computes it (a NaN stays NaN, -0 becomes +0).
///
/// A compare and a select: the standard library's `pointwiseMax` is a loop over the lanes that
/// LLVM did not always inline or vectorise (an out-of-line call per vector took a fifth of the
/// paper MLP's step on AMD EPYC family 25 model 1), and it turns a NaN into 0, hiding it from
/// the step's non-finite check.
@inlinable @inline(__always)
internal func rectified(_ v: FloatVector) -> FloatVector {
    let zero = FloatVector(repeating: 0)
    return v.replacing(with: zero, where: zero .>= v)
}

/// Half a vector: the 8 channels of one position of a `MapLayout.blocked8` block, which the
/// kernels that walk rows of a block take in one step after their full vectors.
public typealias HalfVector = SIMD8<Float>

@inlinable @inline(__always)
internal func loadHalf(_ pointer: UnsafePointer<Float>) -> HalfVector {
    UnsafeRawPointer(pointer).loadUnaligned(as: HalfVector.self)
}

@inlinable @inline(__always)
internal func storeHalf(_ value: HalfVector, _ pointer: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(pointer).storeBytes(of: value, as: HalfVector.self)
}

/// `rectified` for half a vector. A twin, not one generic function: the standard library's
/// comparisons and selects on a generic `SIMD` type are loops over the lanes even where the
/// generic is inlined into a concrete caller (made generic, this function and BatchNorm's
/// gradient through the ReLU took the MLP step from 31k to 13k samples/s on AMD EPYC family 25).
@inlinable @inline(__always)
internal func rectified(_ v: HalfVector) -> HalfVector {
    let zero = HalfVector(repeating: 0)
    return v.replacing(with: zero, where: zero .>= v)
}
