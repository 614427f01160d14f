/// Copies and zero fills of short runs of floats (a few to a few dozen), inline.
///
/// libc's memcpy and memset cost a call and a size dispatch each; on the 7- to 28-value image
/// rows of im2col, inline copies took 5 ms off a 110 ms step of the paper CNN at batch 128.
/// Runs are covered by vectors that may overlap (the last one ends at the run's end), so there
/// is no scalar tail, and no loop that the compiler could turn back into a libc call.
@usableFromInline
enum ShortRows {
    /// dst[0 ..< count] = src[0 ..< count]; the ranges must not overlap.
    @inlinable @inline(__always)
    static func copy(_ src: UnsafePointer<Float>, to dst: UnsafeMutablePointer<Float>, count: Int) {
        if count >= 16 {
            var i = 0
            while i + 16 < count {
                storeVector(loadVector(src + i), dst + i)
                i &+= 16
            }
            storeVector(loadVector(src + count - 16), dst + count - 16)
        } else if count >= 8 {
            move(SIMD8<Float>.self, src, dst, at: 0)
            move(SIMD8<Float>.self, src, dst, at: count - 8)
        } else if count >= 4 {
            move(SIMD4<Float>.self, src, dst, at: 0)
            move(SIMD4<Float>.self, src, dst, at: count - 4)
        } else if count > 0 {
            dst[0] = src[0]
            dst[count >> 1] = src[count >> 1]
            dst[count - 1] = src[count - 1]
        }
    }

    /// dst[0 ..< count] = 0.
    @inlinable @inline(__always)
    static func fill(_ dst: UnsafeMutablePointer<Float>, count: Int) {
        if count >= 16 {
            var i = 0
            while i + 16 < count {
                storeVector(FloatVector(), dst + i)
                i &+= 16
            }
            storeVector(FloatVector(), dst + count - 16)
        } else if count >= 8 {
            zero(SIMD8<Float>.self, dst, at: 0)
            zero(SIMD8<Float>.self, dst, at: count - 8)
        } else if count >= 4 {
            zero(SIMD4<Float>.self, dst, at: 0)
            zero(SIMD4<Float>.self, dst, at: count - 4)
        } else if count > 0 {
            dst[0] = 0
            dst[count >> 1] = 0
            dst[count - 1] = 0
        }
    }

    @inlinable @inline(__always)
    static func move<V: SIMD>(_: V.Type, _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, at offset: Int) where V.Scalar == Float {
        UnsafeMutableRawPointer(dst + offset).storeBytes(of: UnsafeRawPointer(src + offset).loadUnaligned(as: V.self), as: V.self)
    }

    @inlinable @inline(__always)
    static func zero<V: SIMD>(_: V.Type, _ dst: UnsafeMutablePointer<Float>, at offset: Int) where V.Scalar == Float {
        UnsafeMutableRawPointer(dst + offset).storeBytes(of: V(), as: V.self)
    }
}
