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
