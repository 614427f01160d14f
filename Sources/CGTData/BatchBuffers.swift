/// Runs `body` with batch buffers for `count` samples of `featureCount` values.
public func withBatchBuffers<R>(
    _ count: Int, featureCount: Int,
    _ body: (UnsafeMutableBufferPointer<Float>, UnsafeMutableBufferPointer<Int32>, UnsafeMutableBufferPointer<Int64>)
        throws -> R
) rethrows -> R {
    var x = [Float](repeating: 0, count: count * featureCount)
    var y = [Int32](repeating: 0, count: count)
    var ids = [Int64](repeating: 0, count: count)
    return try x.withUnsafeMutableBufferPointer { xb in
        try y.withUnsafeMutableBufferPointer { yb in
            try ids.withUnsafeMutableBufferPointer { ib in try body(xb, yb, ib) }
        }
    }
}
