extension NPYFile {
    /// The pixels of a Fortran-order image array `[H, W, features...]` copied, in C order, into
    /// a temporary file (the element type kept), a block of image rows at a time.
    ///
    /// In Fortran order a pixel's features lie `H * W` values apart and the pixels of an image
    /// row `H` apart; only a run of image rows at one column and feature is contiguous. So a
    /// block of image rows costs `W * features` reads, once, here, instead of on every pass over
    /// the pixels (the finite check, the fit, the write).
    /// - Returns: the temporary, holding `H * W` rows of `features` elements each.
    static func unpackFortranPixels(
        _ data: SourceHandle, dataStart: Int, shape: [Int], elementType: NumericArray.ElementType, blockBytes: Int,
        source path: String
    ) throws -> SourceHandle {
        let (height, width) = (shape[0], shape[1])
        let axes = Array(shape.dropFirst(2))
        let features = axes.reduce(1, *)
        let size = elementType.size
        // The C-order position of each feature in Fortran order.
        var cStrides = [Int](repeating: 1, count: axes.count)
        for axis in stride(from: axes.count - 2, through: 0, by: -1) {
            cStrides[axis] = cStrides[axis + 1] * axes[axis + 1]
        }
        let cPosition = (0..<features).map { fortran in
            var rest = fortran
            var position = 0
            for axis in axes.indices {
                position += (rest % axes[axis]) * cStrides[axis]
                rest /= axes[axis]
            }
            return position
        }
        let spool = try SourceHandle.temporary(holdingDataOf: path)
        let imageRowBytes = width * features * size
        let imageRows = max(1, min(height, blockBytes / max(1, imageRowBytes)))
        let block = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, imageRows * imageRowBytes), alignment: 64)
        defer { block.deallocate() }
        let run = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, imageRows * size), alignment: 64)
        defer { run.deallocate() }
        for top in stride(from: 0, to: height, by: imageRows) {
            let rows = min(imageRows, height - top)
            let runBytes = UnsafeMutableRawBufferPointer(rebasing: run[0..<(rows * size)])
            for column in 0..<width {
                for feature in 0..<features {
                    try data.read(
                        at: dataStart + (top + height * column + height * width * feature) * size, into: runBytes)
                    for row in 0..<rows {
                        let to = ((row * width + column) * features + cPosition[feature]) * size
                        UnsafeMutableRawBufferPointer(rebasing: block[to..<(to + size)]).copyMemory(
                            from: UnsafeRawBufferPointer(rebasing: runBytes[(row * size)..<((row + 1) * size)]))
                    }
                }
            }
            try spool.append(UnsafeRawBufferPointer(rebasing: block[0..<(rows * imageRowBytes)]))
        }
        return spool
    }
}
