import CGTKernels
import CGTTestSupport
import XCTest

/// Shift-and-flip against the textbook definition: pad with zeros, crop, mirror.
final class ImageAugmentationTests: XCTestCase {
    /// Pads every plane by `padding` zeros, crops at (padding + dy, padding + dx), then mirrors if asked.
    func reference(_ image: [Float], channels: Int, height: Int, width: Int, padding: Int, dy: Int, dx: Int, flip: Bool)
        -> [Float]
    {
        let paddedWidth = width + 2 * padding
        let paddedHeight = height + 2 * padding
        var out = [Float](repeating: 0, count: image.count)
        for c in 0..<channels {
            var padded = [Float](repeating: 0, count: paddedHeight * paddedWidth)
            for y in 0..<height {
                for x in 0..<width {
                    padded[(y + padding) * paddedWidth + x + padding] = image[(c * height + y) * width + x]
                }
            }
            for y in 0..<height {
                for x in 0..<width {
                    let cropped = padded[(y + padding + dy) * paddedWidth + (x + padding + dx)]
                    let target = flip ? width - 1 - x : x
                    out[(c * height + y) * width + target] = cropped
                }
            }
        }
        return out
    }

    func testMatchesPadCropAndMirror() {
        let (channels, height, width, padding) = (2, 5, 7, 2)
        let image = Fixtures.uniforms(channels * height * width, seed: 3, 0.1, 1)
        for dy in -padding...padding {
            for dx in -padding...padding {
                for flip in [false, true] {
                    var out = [Float](repeating: .nan, count: image.count)
                    image.withUnsafeBufferPointer { source in
                        out.withUnsafeMutableBufferPointer { target in
                            ImageAugmentation.shiftAndFlip(
                                source.baseAddress!, into: target.baseAddress!, channels: channels,
                                height: height, width: width, dy: dy, dx: dx, flip: flip)
                        }
                    }
                    XCTAssertEqual(
                        out,
                        reference(
                            image, channels: channels, height: height, width: width, padding: padding, dy: dy, dx: dx,
                            flip: flip),
                        "dy \(dy), dx \(dx), flip \(flip)")
                }
            }
        }
    }

    func testDrawsAreDeterministicAndCoverTheRange() {
        var shifts = Set<Int>()
        var flips = 0
        for id in 0..<4000 {
            let a = ImageAugmentation.draw(key: 11, sampleID: Int64(id), padding: 2, flip: true)
            let b = ImageAugmentation.draw(key: 11, sampleID: Int64(id), padding: 2, flip: true)
            XCTAssertTrue(a == b, "sample \(id)")
            XCTAssertTrue((-2...2).contains(a.dy) && (-2...2).contains(a.dx))
            shifts.insert(a.dy * 10 + a.dx)
            if a.flip { flips += 1 }
        }
        XCTAssertEqual(shifts.count, 25, "every shift in [-2, 2]^2 occurs")
        XCTAssertEqual(Double(flips) / 4000, 0.5, accuracy: 0.04)
        let none = ImageAugmentation.draw(key: 11, sampleID: 5, padding: 0, flip: false)
        XCTAssertTrue(none.dy == 0 && none.dx == 0 && !none.flip)
    }
}
