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
        cover(src, dst, count: count)
    }

    /// dst[0 ..< count] = 0.
    @inlinable @inline(__always)
    static func fill(_ dst: UnsafeMutablePointer<Float>, count: Int) {
        cover(nil, dst, count: count)
    }

    /// Writes src's values (zeros when nil) over dst[0 ..< count] with overlapping vectors.
    @inlinable @inline(__always)
    static func cover(_ src: UnsafePointer<Float>?, _ dst: UnsafeMutablePointer<Float>, count: Int) {
        if count >= 16 {
            var i = 0
            while i + 16 < count {
                move(FloatVector.self, src, dst, at: i)
                i &+= 16
            }
            move(FloatVector.self, src, dst, at: count - 16)
        } else if count >= 8 {
            move(SIMD8<Float>.self, src, dst, at: 0)
            move(SIMD8<Float>.self, src, dst, at: count - 8)
        } else if count >= 4 {
            move(SIMD4<Float>.self, src, dst, at: 0)
            move(SIMD4<Float>.self, src, dst, at: count - 4)
        } else if count > 0 {
            dst[0] = src?[0] ?? 0
            dst[count >> 1] = src?[count >> 1] ?? 0
            dst[count - 1] = src?[count - 1] ?? 0
        }
    }

    @inlinable @inline(__always)
    static func move<V: SIMD>(_: V.Type, _ src: UnsafePointer<Float>?, _ dst: UnsafeMutablePointer<Float>, at offset: Int) where V.Scalar == Float {
        let value = src.map { UnsafeRawPointer($0 + offset).loadUnaligned(as: V.self) } ?? V()
        UnsafeMutableRawPointer(dst + offset).storeBytes(of: value, as: V.self)
    }
}
