/// Sums, column sums and dot products with several vector accumulators.
public enum Reductions {
    /// The sum of all elements (four vector accumulators, so the additions overlap).
    @inlinable
    public static func sum(_ x: UnsafeBufferPointer<Float>) -> Float {
        let n = x.count
        guard n > 0 else { return 0 }
        let p = x.baseAddress!
        var a0 = FloatVector()
        var a1 = FloatVector()
        var a2 = FloatVector()
        var a3 = FloatVector()
        var i = 0
        while i + 64 <= n {
            a0 += loadVector(p + i)
            a1 += loadVector(p + i + 16)
            a2 += loadVector(p + i + 32)
            a3 += loadVector(p + i + 48)
            i &+= 64
        }
        while i + 16 <= n {
            a0 += loadVector(p + i)
            i &+= 16
        }
        var total = ((a0 + a1) + (a2 + a3)).sum()
        while i < n {
            total += p[i]
            i &+= 1
        }
        return total
    }

    /// The dot product of two vectors of equal length.
    @inlinable
    public static func dot(_ x: UnsafeBufferPointer<Float>, _ y: UnsafeBufferPointer<Float>) -> Float {
        let n = x.count
        precondition(y.count == n, "dot: lengths \(n) and \(y.count) differ")
        guard n > 0 else { return 0 }
        let a = x.baseAddress!
        let b = y.baseAddress!
        var a0 = FloatVector()
        var a1 = FloatVector()
        var i = 0
        while i + 32 <= n {
            a0.addProduct(loadVector(a + i), loadVector(b + i))
            a1.addProduct(loadVector(a + i + 16), loadVector(b + i + 16))
            i &+= 32
        }
        while i + 16 <= n {
            a0.addProduct(loadVector(a + i), loadVector(b + i))
            i &+= 16
        }
        var total = (a0 + a1).sum()
        while i < n {
            total += a[i] * b[i]
            i &+= 1
        }
        return total
    }

    /// sums[c] = sum over rows of x[r, c] (a bias gradient), overwriting `sums`.
    @inlinable
    public static func columnSums(
        _ x: UnsafeBufferPointer<Float>, rows: Int, into sums: UnsafeMutableBufferPointer<Float>
    ) {
        let columns = sums.count
        precondition(x.count >= rows * columns, "columnSums: input holds \(x.count) values, needs \(rows * columns)")
        let src = x.baseAddress!
        let dst = sums.baseAddress!
        dst.update(repeating: 0, count: columns)
        let full = vectorizedPrefix(columns)
        for r in 0..<rows {
            let row = src + r * columns
            var c = 0
            while c < full {
                storeVector(loadVector(dst + c) + loadVector(row + c), dst + c)
                c &+= 16
            }
            if columns &- c >= 8 {
                // Half a vector: the 8 channels of a block of `MapLayout.blocked8`.
                storeHalf(loadHalf(dst + c) + loadHalf(row + c), dst + c)
                c &+= 8
            }
            while c < columns {
                dst[c] += row[c]
                c &+= 1
            }
        }
    }

    /// The index of the largest element of each row and that element (ties: the first index).
    @inlinable
    public static func rowMax(
        _ x: UnsafeBufferPointer<Float>, rows: Int, columns: Int,
        maxima: UnsafeMutableBufferPointer<Float>, indices: UnsafeMutableBufferPointer<Int32>
    ) {
        precondition(
            columns > 0 && x.count >= rows * columns && maxima.count >= rows && indices.count >= rows,
            "rowMax: buffers do not fit \(rows) x \(columns)")
        let src = x.baseAddress!
        for r in 0..<rows {
            let row = src + r * columns
            var best = row[0]
            var index = 0
            for c in 1..<columns where row[c] > best {
                best = row[c]
                index = c
            }
            maxima[r] = best
            indices[r] = Int32(index)
        }
    }
}
