/// Max and average pooling over the `height x width` planes of `[N, C, H, W]` tensors.
///
/// Every plane is pooled on its own, so a batch is `planes = N * C` planes one after another.
public enum PoolingKernels {
    /// 2x2 max pooling with stride 2: out[y, x] = max of in[2y..2y+1, 2x..2x+1], as PyTorch's
    /// `MaxPool2d(2)`; an odd last row or column is dropped (Hout = floor(H / 2)).
    ///
    /// `argmax` receives, for every output, the index inside its input plane (`iy * width + ix`)
    /// of the value chosen; among equal values the first in the order (0,0), (0,1), (1,0), (1,1)
    /// wins, so the backward pass routes the gradient to exactly one input. A NaN wins over any
    /// number and the last NaN over earlier ones, PyTorch's rule, so a NaN anywhere in a window
    /// reaches the output (and the non-finite check of the step) instead of vanishing.
    @inlinable
    public static func maxPool2x2Forward(
        _ input: UnsafeBufferPointer<Float>, planes: Int, height: Int, width: Int,
        output: UnsafeMutableBufferPointer<Float>, argmax: UnsafeMutableBufferPointer<Int32>
    ) {
        let oh = height / 2, ow = width / 2
        precondition(oh > 0 && ow > 0, "maxPool2x2: a \(height)x\(width) plane has no 2x2 window")
        precondition(input.count >= planes * height * width, "maxPool2x2: input holds \(input.count) values, needs \(planes * height * width)")
        precondition(output.count >= planes * oh * ow && argmax.count >= planes * oh * ow,
                     "maxPool2x2: outputs shorter than \(planes * oh * ow)")
        let x = input.baseAddress!, y = output.baseAddress!, indices = argmax.baseAddress!
        // The last pointers an 8-output vector may touch: 16 inputs from a row, 8 outputs.
        let inputEnd = x + planes * height * width, outputEnd = y + planes * oh * ow
        for p in 0..<planes {
            let plane = x + p * height * width
            for oy in 0..<oh {
                let top = plane + 2 * oy * width, bottom = top + width
                let out = y + (p * oh + oy) * ow, index = indices + (p * oh + oy) * ow
                let rowStart = Int32(2 * oy * width)
                if ow >= 8 {
                    // Vectors, the last one overlapping the one before when 8 does not divide the row.
                    var ox = 0
                    while true {
                        maxPool8(top: top, bottom: bottom, width: width, rowStart: rowStart, column: ox, output: out, argmax: index)
                        if ox + 8 == ow { break }
                        ox = min(ox + 8, ow - 8)
                    }
                } else if bottom + 16 <= inputEnd && out + 8 <= outputEnd {
                    // A row narrower than a vector (the paper CNN's 7 and 3): one vector whose extra
                    // lanes read the next rows and write the next outputs, which their own row
                    // overwrites later. Cheaper than a scalar loop whose selects become branches.
                    maxPool8(top: top, bottom: bottom, width: width, rowStart: rowStart, column: 0, output: out, argmax: index)
                } else {
                    for ox in 0..<ow {
                        maxPool1(top: top, bottom: bottom, width: width, rowStart: rowStart, column: ox, output: out, argmax: index)
                    }
                }
            }
        }
    }

    /// Outputs `column ..< column + 8` of one output row (lane l: window at input column 2 (column + l)).
    @inlinable @inline(__always)
    static func maxPool8(
        top: UnsafePointer<Float>, bottom: UnsafePointer<Float>, width: Int, rowStart: Int32, column ox: Int,
        output out: UnsafeMutablePointer<Float>, argmax index: UnsafeMutablePointer<Int32>
    ) {
        let laneColumns = SIMD8<Int32>(0, 2, 4, 6, 8, 10, 12, 14)
        let below = Int32(width)
        let upper = UnsafeRawPointer(top + 2 * ox).loadUnaligned(as: SIMD16<Float>.self)
        let lower = UnsafeRawPointer(bottom + 2 * ox).loadUnaligned(as: SIMD16<Float>.self)
        var best = upper.evenHalf
        var offset = SIMD8<Int32>(repeating: 0)
        var better = wins(upper.oddHalf, over: best)
        best.replace(with: upper.oddHalf, where: better)
        offset.replace(with: 1, where: better)
        better = wins(lower.evenHalf, over: best)
        best.replace(with: lower.evenHalf, where: better)
        offset.replace(with: below, where: better)
        better = wins(lower.oddHalf, over: best)
        best.replace(with: lower.oddHalf, where: better)
        offset.replace(with: below + 1, where: better)
        UnsafeMutableRawPointer(out + ox).storeBytes(of: best, as: SIMD8<Float>.self)
        let chosen = laneColumns &+ SIMD8<Int32>(repeating: rowStart + Int32(2 * ox)) &+ offset
        UnsafeMutableRawPointer(index + ox).storeBytes(of: chosen, as: SIMD8<Int32>.self)
    }

    /// Whether a later value of a window replaces the best so far: larger, or NaN.
    @inlinable @inline(__always)
    static func wins(_ candidate: SIMD8<Float>, over best: SIMD8<Float>) -> SIMDMask<SIMD8<Int32>> {
        (candidate .> best) .| (candidate .!= candidate)
    }

    @inlinable @inline(__always)
    static func wins(_ candidate: Float, over best: Float) -> Bool {
        candidate > best || candidate.isNaN
    }

    /// Output `column` of one output row, for the last rows of a buffer where a vector would
    /// run past its end.
    @inlinable @inline(__always)
    static func maxPool1(
        top: UnsafePointer<Float>, bottom: UnsafePointer<Float>, width: Int, rowStart: Int32, column ox: Int,
        output out: UnsafeMutablePointer<Float>, argmax index: UnsafeMutablePointer<Int32>
    ) {
        let column = 2 * ox
        var best = top[column], at = column
        let b = top[column + 1], c = bottom[column], d = bottom[column + 1]
        if wins(b, over: best) { at = column + 1; best = b }
        if wins(c, over: best) { at = width + column; best = c }
        if wins(d, over: best) { at = width + column + 1; best = d }
        out[ox] = best
        index[ox] = rowStart + Int32(at)
    }

    /// The backward of `maxPool2x2Forward`: each output gradient goes to the input its `argmax`
    /// names; every other input gradient (including a dropped odd row or column) is 0.
    @inlinable
    public static func maxPool2x2Backward(
        outputGradient: UnsafeBufferPointer<Float>, argmax: UnsafeBufferPointer<Int32>, planes: Int, height: Int, width: Int,
        inputGradient: UnsafeMutableBufferPointer<Float>
    ) {
        let outputs = (height / 2) * (width / 2), plane = height * width
        precondition(outputGradient.count >= planes * outputs && argmax.count >= planes * outputs,
                     "maxPool2x2 backward: gradients shorter than \(planes * outputs)")
        precondition(inputGradient.count >= planes * plane, "maxPool2x2 backward: input gradient shorter than \(planes * plane)")
        let dy = outputGradient.baseAddress!, indices = argmax.baseAddress!, dx = inputGradient.baseAddress!
        dx.update(repeating: 0, count: planes * plane)
        for p in 0..<planes {
            let target = dx + p * plane, source = dy + p * outputs, index = indices + p * outputs
            for o in 0..<outputs { target[Int(index[o])] = source[o] }
        }
    }

    /// out[p] = mean of plane p (`spatial` values): global average pooling, as PyTorch's
    /// `AdaptiveAvgPool2d(1)`.
    @inlinable
    public static func globalAverageForward(
        _ input: UnsafeBufferPointer<Float>, planes: Int, spatial: Int, output: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(spatial > 0 && input.count >= planes * spatial && output.count >= planes,
                     "globalAverage: buffers do not fit \(planes) planes of \(spatial)")
        let x = input.baseAddress!, divisor = Float(spatial)
        for p in 0..<planes {
            output[p] = Reductions.sum(UnsafeBufferPointer(start: x + p * spatial, count: spatial)) / divisor
        }
    }

    /// dx[p, s] = dy[p] / spatial for every position s of plane p.
    @inlinable
    public static func globalAverageBackward(
        outputGradient: UnsafeBufferPointer<Float>, planes: Int, spatial: Int, inputGradient: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(spatial > 0 && outputGradient.count >= planes && inputGradient.count >= planes * spatial,
                     "globalAverage backward: buffers do not fit \(planes) planes of \(spatial)")
        let dx = inputGradient.baseAddress!, divisor = Float(spatial)
        for p in 0..<planes {
            (dx + p * spatial).update(repeating: outputGradient[p] / divisor, count: spatial)
        }
    }
}
