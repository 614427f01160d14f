/// Max and average pooling over the `height x width` positions of feature maps.
///
/// Channels-first maps (`[N, C, H, W]`) are pooled plane by plane, a batch being `planes = N * C`
/// planes one after another; channels-last maps (`[N, H, W, C]`) position by position, the
/// vectors running across the channels.
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
        let oh = height / 2
        let ow = width / 2
        precondition(oh > 0 && ow > 0, "maxPool2x2: a \(height)x\(width) plane has no 2x2 window")
        precondition(
            input.count >= planes * height * width,
            "maxPool2x2: input holds \(input.count) values, needs \(planes * height * width)")
        precondition(
            output.count >= planes * oh * ow && argmax.count >= planes * oh * ow,
            "maxPool2x2: outputs shorter than \(planes * oh * ow)")
        let x = input.baseAddress!
        let y = output.baseAddress!
        let indices = argmax.baseAddress!
        // The last pointers an 8-output vector may touch: 16 inputs from a row, 8 outputs.
        let inputEnd = x + planes * height * width
        let outputEnd = y + planes * oh * ow
        for p in 0..<planes {
            let plane = x + p * height * width
            for oy in 0..<oh {
                let top = plane + 2 * oy * width
                let bottom = top + width
                let out = y + (p * oh + oy) * ow
                let index = indices + (p * oh + oy) * ow
                let rowStart = Int32(2 * oy * width)
                if ow >= 8 {
                    // Vectors, the last one overlapping the one before when 8 does not divide the row.
                    var ox = 0
                    while true {
                        maxPool8(
                            top: top, bottom: bottom, width: width, rowStart: rowStart, column: ox, output: out,
                            argmax: index)
                        if ox + 8 == ow { break }
                        ox = min(ox + 8, ow - 8)
                    }
                } else if bottom + 16 <= inputEnd && out + 8 <= outputEnd {
                    // A row narrower than a vector (the paper CNN's 7 and 3): one vector whose extra
                    // lanes read the next rows and write the next outputs, which their own row
                    // overwrites later. Cheaper than a scalar loop whose selects become branches.
                    maxPool8(
                        top: top, bottom: bottom, width: width, rowStart: rowStart, column: 0, output: out,
                        argmax: index)
                } else {
                    for ox in 0..<ow {
                        maxPool1(
                            top: top, bottom: bottom, width: width, rowStart: rowStart, column: ox, output: out,
                            argmax: index)
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
        var best = top[column]
        var at = column
        let b = top[column + 1]
        let c = bottom[column]
        let d = bottom[column + 1]
        if wins(b, over: best) {
            at = column + 1
            best = b
        }
        if wins(c, over: best) {
            at = width + column
            best = c
        }
        if wins(d, over: best) {
            at = width + column + 1
            best = d
        }
        out[ox] = best
        index[ox] = rowStart + Int32(at)
    }

    /// The backward of `maxPool2x2Forward`: each output gradient goes to the input its `argmax`
    /// names; every other input gradient (including a dropped odd row or column) is 0.
    @inlinable
    public static func maxPool2x2Backward(
        outputGradient: UnsafeBufferPointer<Float>, argmax: UnsafeBufferPointer<Int32>, planes: Int, height: Int,
        width: Int,
        inputGradient: UnsafeMutableBufferPointer<Float>
    ) {
        let outputs = (height / 2) * (width / 2)
        let plane = height * width
        precondition(
            outputGradient.count >= planes * outputs && argmax.count >= planes * outputs,
            "maxPool2x2 backward: gradients shorter than \(planes * outputs)")
        precondition(
            inputGradient.count >= planes * plane, "maxPool2x2 backward: input gradient shorter than \(planes * plane)")
        let dy = outputGradient.baseAddress!
        let indices = argmax.baseAddress!
        let dx = inputGradient.baseAddress!
        dx.update(repeating: 0, count: planes * plane)
        for p in 0..<planes {
            let target = dx + p * plane
            let source = dy + p * outputs
            let index = indices + p * outputs
            for o in 0..<outputs { target[Int(index[o])] = source[o] }
        }
    }

    /// out[p] = mean of plane p (`spatial` values): global average pooling, as PyTorch's
    /// `AdaptiveAvgPool2d(1)`.
    @inlinable
    public static func globalAverageForward(
        _ input: UnsafeBufferPointer<Float>, planes: Int, spatial: Int, output: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(
            spatial > 0 && input.count >= planes * spatial && output.count >= planes,
            "globalAverage: buffers do not fit \(planes) planes of \(spatial)")
        let x = input.baseAddress!
        let divisor = Float(spatial)
        for p in 0..<planes {
            output[p] = Reductions.sum(UnsafeBufferPointer(start: x + p * spatial, count: spatial)) / divisor
        }
    }

    /// dx[p, s] = dy[p] / spatial for every position s of plane p.
    @inlinable
    public static func globalAverageBackward(
        outputGradient: UnsafeBufferPointer<Float>, planes: Int, spatial: Int,
        inputGradient: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(
            spatial > 0 && outputGradient.count >= planes && inputGradient.count >= planes * spatial,
            "globalAverage backward: buffers do not fit \(planes) planes of \(spatial)")
        let dx = inputGradient.baseAddress!
        let divisor = Float(spatial)
        for p in 0..<planes {
            (dx + p * spatial).update(repeating: outputGradient[p] / divisor, count: spatial)
        }
    }

    // MARK: Channels-last maps

    /// 2x2 max pooling with stride 2 of channels-last maps (`maps` samples of `[H, W, C]`), with
    /// the rules of `maxPool2x2Forward`: the first of equal values wins in the order (0,0),
    /// (0,1), (1,0), (1,1), a NaN wins over any number, an odd last row or column is dropped.
    ///
    /// `window` receives, for every output value, which of its four inputs was chosen (0-3 in
    /// that order); the backward pass needs no more.
    @inlinable
    public static func maxPool2x2ChannelsLastForward(
        _ input: UnsafeBufferPointer<Float>, maps: Int, channels: Int, height: Int, width: Int,
        output: UnsafeMutableBufferPointer<Float>, window: UnsafeMutableBufferPointer<Int32>
    ) {
        let oh = height / 2
        let ow = width / 2
        let c = channels
        precondition(oh > 0 && ow > 0, "maxPool2x2: a \(height)x\(width) map has no 2x2 window")
        precondition(
            input.count >= maps * height * width * c,
            "maxPool2x2: input holds \(input.count) values, needs \(maps * height * width * c)")
        precondition(
            output.count >= maps * oh * ow * c && window.count >= maps * oh * ow * c,
            "maxPool2x2: outputs shorter than \(maps * oh * ow * c)")
        let x = input.baseAddress!
        let y = output.baseAddress!
        let slots = window.baseAddress!
        let full = vectorizedPrefix(c)
        let rowStride = width * c
        if c == 16 {
            // A block of a blocked map: one vector per window and nothing else in the loop (the
            // general loop below spends as long again on its bookkeeping; RESULTS.md, "Kernel and
            // reducer choices").
            var out = y
            var slot = slots
            for n in 0..<maps {
                for oy in 0..<oh {
                    var a = x + (n &* height &+ 2 &* oy) &* rowStride
                    for _ in 0..<ow {
                        maxOfWindow(a, a + 16, a + rowStride, a + rowStride + 16, output: out, slot: slot)
                        a += 32
                        out += 16
                        slot += 16
                    }
                }
            }
            return
        }
        if c == 8 {
            // A block of an 8-channel blocked map: two windows side by side per vector, their
            // inputs gathered from the two halves; an odd last window fills both halves and keeps one.
            var out = y
            var slot = slots
            for n in 0..<maps {
                for oy in 0..<oh {
                    let top = x + (n &* height &+ 2 &* oy) &* rowStride
                    let bottom = top + rowStride
                    var ox = 0
                    while ox < ow {
                        let a = top + 16 &* ox
                        let d = bottom + 16 &* ox
                        let next = ox + 1 < ow ? 16 : 0
                        let (best, chosen) = maxOfWindow(
                            halves(a, a + next), halves(a + 8, a + 8 + next), halves(d, d + next),
                            halves(d + 8, d + 8 + next))
                        if next == 16 {
                            storeVector(best, out)
                            UnsafeMutableRawPointer(slot).storeBytes(of: chosen, as: SIMD16<Int32>.self)
                        } else {
                            storeHalf(best.lowHalf, out)
                            UnsafeMutableRawPointer(slot).storeBytes(of: chosen.lowHalf, as: SIMD8<Int32>.self)
                        }
                        out += 8 + next / 2
                        slot += 8 + next / 2
                        ox += 2
                    }
                }
            }
            return
        }
        var outputOffset = 0
        for n in 0..<maps {
            for oy in 0..<oh {
                let top = x + (n &* height &+ 2 &* oy) &* rowStride
                for ox in 0..<ow {
                    let a = top + 2 &* ox &* c
                    let b = a + c
                    let d = a + rowStride
                    let e = d + c
                    let out = y + outputOffset
                    let slot = slots + outputOffset
                    outputOffset &+= c
                    var j = 0
                    while j < full {
                        maxOfWindow(a + j, b + j, d + j, e + j, output: out + j, slot: slot + j)
                        j &+= 16
                    }
                    while j < c {
                        var best = a[j]
                        var chosen: Int32 = 0
                        if wins(b[j], over: best) {
                            best = b[j]
                            chosen = 1
                        }
                        if wins(d[j], over: best) {
                            best = d[j]
                            chosen = 2
                        }
                        if wins(e[j], over: best) {
                            best = e[j]
                            chosen = 3
                        }
                        out[j] = best
                        slot[j] = chosen
                        j &+= 1
                    }
                }
            }
        }
    }

    /// 16 channels of one window: the maximum of inputs `a`, `b`, `d`, `e` (slots 0-3) into
    /// `output`, the winning slot into `slot`.
    @inlinable @inline(__always)
    static func maxOfWindow(
        _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ d: UnsafePointer<Float>, _ e: UnsafePointer<Float>,
        output: UnsafeMutablePointer<Float>, slot: UnsafeMutablePointer<Int32>
    ) {
        let (best, chosen) = maxOfWindow(loadVector(a), loadVector(b), loadVector(d), loadVector(e))
        storeVector(best, output)
        UnsafeMutableRawPointer(slot).storeBytes(of: chosen, as: SIMD16<Int32>.self)
    }

    /// The lane-wise maximum of four window inputs and which of them (0-3) won each lane.
    @inlinable @inline(__always)
    static func maxOfWindow(
        _ a: FloatVector, _ b: FloatVector, _ d: FloatVector, _ e: FloatVector
    ) -> (best: FloatVector, chosen: SIMD16<Int32>) {
        // Vector constants: comparing with or selecting a scalar literal compiles to a loop over the lanes.
        let slot1 = SIMD16<Int32>(repeating: 1)
        let slot2 = SIMD16<Int32>(repeating: 2)
        let slot3 = SIMD16<Int32>(repeating: 3)
        var best = a
        var chosen = SIMD16<Int32>(repeating: 0)
        @inline(__always) func consider(_ candidate: FloatVector, _ index: SIMD16<Int32>) {
            let better = wins(candidate, over: best)
            best.replace(with: candidate, where: better)
            chosen.replace(with: index, where: better)
        }
        consider(b, slot1)
        consider(d, slot2)
        consider(e, slot3)
        return (best, chosen)
    }

    /// Eight values from `low` and eight from `high` in one vector: two positions of an
    /// 8-channel block.
    @inlinable @inline(__always)
    static func halves(_ low: UnsafePointer<Float>, _ high: UnsafePointer<Float>) -> FloatVector {
        FloatVector(lowHalf: loadHalf(low), highHalf: loadHalf(high))
    }

    /// The backward of `maxOfWindow`: 16 channels of gradient to the inputs their slots name, 0 to the others.
    @inlinable @inline(__always)
    static func routeToWindow(
        gradient g: UnsafePointer<Float>, slot: UnsafePointer<Int32>, _ a: UnsafeMutablePointer<Float>,
        _ b: UnsafeMutablePointer<Float>, _ d: UnsafeMutablePointer<Float>, _ e: UnsafeMutablePointer<Float>
    ) {
        let zero = FloatVector(repeating: 0)
        let gradient = loadVector(g)
        let chosen = UnsafeRawPointer(slot).loadUnaligned(as: SIMD16<Int32>.self)
        storeVector(zero.replacing(with: gradient, where: chosen .== SIMD16<Int32>(repeating: 0)), a)
        storeVector(zero.replacing(with: gradient, where: chosen .== SIMD16<Int32>(repeating: 1)), b)
        storeVector(zero.replacing(with: gradient, where: chosen .== SIMD16<Int32>(repeating: 2)), d)
        storeVector(zero.replacing(with: gradient, where: chosen .== SIMD16<Int32>(repeating: 3)), e)
    }

    @inlinable @inline(__always)
    static func wins(_ candidate: FloatVector, over best: FloatVector) -> SIMDMask<SIMD16<Int32>> {
        (candidate .> best) .| (candidate .!= candidate)
    }

    /// The backward of `maxPool2x2ChannelsLastForward`: each output gradient goes to the input
    /// its `window` slot names; every other input gradient (a dropped odd row or column too) is 0.
    @inlinable
    public static func maxPool2x2ChannelsLastBackward(
        outputGradient: UnsafeBufferPointer<Float>, window: UnsafeBufferPointer<Int32>,
        maps: Int, channels: Int, height: Int, width: Int, inputGradient: UnsafeMutableBufferPointer<Float>
    ) {
        let oh = height / 2
        let ow = width / 2
        let c = channels
        precondition(
            outputGradient.count >= maps * oh * ow * c && window.count >= maps * oh * ow * c,
            "maxPool2x2 backward: gradients shorter than \(maps * oh * ow * c)")
        precondition(
            inputGradient.count >= maps * height * width * c,
            "maxPool2x2 backward: input gradient shorter than \(maps * height * width * c)")
        let dy = outputGradient.baseAddress!
        let slots = window.baseAddress!
        let dx = inputGradient.baseAddress!
        // The windows cover every input of an even map; an odd one keeps zeros in its last row or column.
        if height % 2 == 1 || width % 2 == 1 { dx.update(repeating: 0, count: maps * height * width * c) }
        let full = vectorizedPrefix(c)
        let rowStride = width * c
        if c == 16 {
            // A block of a blocked map, as in the forward pass.
            var g = dy
            var slot = slots
            for n in 0..<maps {
                for oy in 0..<oh {
                    var a = dx + (n &* height &+ 2 &* oy) &* rowStride
                    for _ in 0..<ow {
                        routeToWindow(gradient: g, slot: slot, a, a + 16, a + rowStride, a + rowStride + 16)
                        a += 32
                        g += 16
                        slot += 16
                    }
                }
            }
            return
        }
        if c == 8 {
            // Two windows of an 8-channel block per vector, as in the forward pass.
            var g = dy
            var slot = slots
            let zero = FloatVector(repeating: 0)
            for n in 0..<maps {
                for oy in 0..<oh {
                    let top = dx + (n &* height &+ 2 &* oy) &* rowStride
                    let bottom = top + rowStride
                    var ox = 0
                    while ox < ow {
                        let next = ox + 1 < ow ? 16 : 0
                        let gradient = halves(g, g + next / 2)
                        let chosen = SIMD16<Int32>(
                            lowHalf: UnsafeRawPointer(slot).loadUnaligned(as: SIMD8<Int32>.self),
                            highHalf: UnsafeRawPointer(slot + next / 2).loadUnaligned(as: SIMD8<Int32>.self))
                        let a = top + 16 &* ox
                        let d = bottom + 16 &* ox
                        @inline(__always) func route(_ k: Int32, to target: UnsafeMutablePointer<Float>) {
                            let v = zero.replacing(with: gradient, where: chosen .== SIMD16<Int32>(repeating: k))
                            storeHalf(v.lowHalf, target)
                            if next == 16 { storeHalf(v.highHalf, target + 16) }
                        }
                        route(0, to: a)
                        route(1, to: a + 8)
                        route(2, to: d)
                        route(3, to: d + 8)
                        g += 8 + next / 2
                        slot += 8 + next / 2
                        ox += 2
                    }
                }
            }
            return
        }
        var outputOffset = 0
        for n in 0..<maps {
            for oy in 0..<oh {
                let top = dx + (n &* height &+ 2 &* oy) &* rowStride
                for ox in 0..<ow {
                    let a = top + 2 &* ox &* c
                    let b = a + c
                    let d = a + rowStride
                    let e = d + c
                    let g = dy + outputOffset
                    let slot = slots + outputOffset
                    outputOffset &+= c
                    var j = 0
                    while j < full {
                        routeToWindow(gradient: g + j, slot: slot + j, a + j, b + j, d + j, e + j)
                        j &+= 16
                    }
                    while j < c {
                        let gradient = g[j]
                        let chosen = slot[j]
                        a[j] = chosen == 0 ? gradient : 0
                        b[j] = chosen == 1 ? gradient : 0
                        d[j] = chosen == 2 ? gradient : 0
                        e[j] = chosen == 3 ? gradient : 0
                        j &+= 1
                    }
                }
            }
        }
    }

    /// out[n, c] = mean over the `spatial` positions of channels-last map n.
    @inlinable
    public static func globalAverageChannelsLastForward(
        _ input: UnsafeBufferPointer<Float>, maps: Int, channels: Int, spatial: Int,
        output: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(
            spatial > 0 && input.count >= maps * spatial * channels && output.count >= maps * channels,
            "globalAverage: buffers do not fit \(maps) maps of \(spatial)x\(channels)")
        let x = input.baseAddress!
        let y = output.baseAddress!
        let scale = 1 / Float(spatial)
        for n in 0..<maps {
            let sums = UnsafeMutableBufferPointer(start: y + n * channels, count: channels)
            Reductions.columnSums(
                UnsafeBufferPointer(start: x + n * spatial * channels, count: spatial * channels), rows: spatial,
                into: sums)
            for j in sums.indices { sums[j] *= scale }
        }
    }

    /// dx[n, s, c] = dy[n, c] / spatial for every position s of channels-last map n.
    @inlinable
    public static func globalAverageChannelsLastBackward(
        outputGradient: UnsafeBufferPointer<Float>, maps: Int, channels: Int, spatial: Int,
        inputGradient: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(
            spatial > 0 && outputGradient.count >= maps * channels && inputGradient.count >= maps * spatial * channels,
            "globalAverage backward: buffers do not fit \(maps) maps of \(spatial)x\(channels)")
        let dy = outputGradient.baseAddress!
        let dx = inputGradient.baseAddress!
        let scale = 1 / Float(spatial)
        withUnsafeTemporaryAllocation(of: Float.self, capacity: channels) { row in
            for n in 0..<maps {
                for j in 0..<channels { row[j] = dy[n * channels + j] * scale }
                for s in 0..<spatial {
                    (dx + (n * spatial + s) * channels).update(from: row.baseAddress!, count: channels)
                }
            }
        }
    }
}
