import CZlib
import XCTest

/// Compresses with zlib's deflate, for fixtures that need real (Huffman-coded) compressed data.
enum Deflate {
    /// `data` as a gzip member (`gzip = true`) or a raw deflate stream (as in a zip member).
    static func compress(_ data: [UInt8], gzip: Bool, level: Int32 = 6) -> [UInt8] {
        var stream = z_stream()
        precondition(czlib_deflate_init2(&stream, level, gzip ? 15 + 16 : -15) == Z_OK, "deflateInit2 failed")
        defer { deflateEnd(&stream) }
        var input = data
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(data.count))) + 64)
        let produced = input.withUnsafeMutableBufferPointer { source in
            output.withUnsafeMutableBufferPointer { destination -> Int in
                stream.next_in = source.baseAddress
                stream.avail_in = UInt32(source.count)
                stream.next_out = destination.baseAddress
                stream.avail_out = UInt32(destination.count)
                precondition(deflate(&stream, Z_FINISH) == Z_STREAM_END, "deflate did not finish")
                return destination.count - Int(stream.avail_out)
            }
        }
        return Array(output[..<produced])
    }
}
