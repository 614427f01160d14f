/// Element-wise kernels over row-major `[rows, columns]` matrices and flat vectors.
public enum Elementwise {
    /// y[r, c] += bias[c] for every row.
    @inlinable
    public static func addBias(_ bias: UnsafeBufferPointer<Float>, to y: UnsafeMutableBufferPointer<Float>, rows: Int) {
        let columns = bias.count
        precondition(y.count >= rows * columns, "addBias: output holds \(y.count) values, needs \(rows * columns)")
        let b = bias.baseAddress!
        let out = y.baseAddress!
        let full = vectorizedPrefix(columns)
        for r in 0..<rows {
            let row = out + r * columns
            var c = 0
            while c < full {
                storeVector(loadVector(row + c) + loadVector(b + c), row + c)
                c &+= 16
            }
            while c < columns {
                row[c] += b[c]
                c &+= 1
            }
        }
    }

    /// y = max(x, 0).
    @inlinable
    public static func reluForward(_ x: UnsafeBufferPointer<Float>, _ y: UnsafeMutableBufferPointer<Float>) {
        let n = x.count
        precondition(y.count >= n, "reluForward: output shorter than input")
        let src = x.baseAddress!
        let dst = y.baseAddress!
        let full = vectorizedPrefix(n)
        var i = 0
        while i < full {
            storeVector(rectified(loadVector(src + i)), dst + i)
            i &+= 16
        }
        while i < n {
            dst[i] = max(src[i], 0)
            i &+= 1
        }
    }

    /// dx = dy where the ReLU's output y > 0, else 0.
    @inlinable
    public static func reluBackward(
        output y: UnsafeBufferPointer<Float>, outputGradient dy: UnsafeBufferPointer<Float>,
        inputGradient dx: UnsafeMutableBufferPointer<Float>
    ) {
        let n = y.count
        precondition(dy.count >= n && dx.count >= n, "reluBackward: buffers shorter than the output")
        let yp = y.baseAddress!
        let dyp = dy.baseAddress!
        let dxp = dx.baseAddress!
        let zero = FloatVector(repeating: 0)
        let full = vectorizedPrefix(n)
        var i = 0
        while i < full {
            let positive = loadVector(yp + i) .> zero
            storeVector(zero.replacing(with: loadVector(dyp + i), where: positive), dxp + i)
            i &+= 16
        }
        while i < n {
            dxp[i] = yp[i] > 0 ? dyp[i] : 0
            i &+= 1
        }
    }

    /// y += x.
    @inlinable
    public static func add(_ x: UnsafeBufferPointer<Float>, to y: UnsafeMutableBufferPointer<Float>) {
        let n = x.count
        precondition(y.count >= n, "add: destination shorter than source")
        let src = x.baseAddress!
        let dst = y.baseAddress!
        let full = vectorizedPrefix(n)
        var i = 0
        while i < full {
            storeVector(loadVector(dst + i) + loadVector(src + i), dst + i)
            i &+= 16
        }
        while i < n {
            dst[i] += src[i]
            i &+= 1
        }
    }

    /// y = alpha * y.
    @inlinable
    public static func scale(_ y: UnsafeMutableBufferPointer<Float>, by alpha: Float) {
        let n = y.count
        let dst = y.baseAddress!
        let full = vectorizedPrefix(n)
        var i = 0
        while i < full {
            storeVector(loadVector(dst + i) * alpha, dst + i)
            i &+= 16
        }
        while i < n {
            dst[i] *= alpha
            i &+= 1
        }
    }

    /// y = x * mask, element by element (the dropout forward and backward).
    @inlinable
    public static func multiply(
        _ x: UnsafeBufferPointer<Float>, by mask: UnsafeBufferPointer<Float>, into y: UnsafeMutableBufferPointer<Float>
    ) {
        let n = x.count
        precondition(mask.count >= n && y.count >= n, "multiply: buffers shorter than the input")
        let a = x.baseAddress!
        let m = mask.baseAddress!
        let dst = y.baseAddress!
        let full = vectorizedPrefix(n)
        var i = 0
        while i < full {
            storeVector(loadVector(a + i) * loadVector(m + i), dst + i)
            i &+= 16
        }
        while i < n {
            dst[i] = a[i] * m[i]
            i &+= 1
        }
    }
}
