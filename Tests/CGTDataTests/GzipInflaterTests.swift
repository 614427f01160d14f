import CGTData
import CGTTestSupport
import XCTest

/// gzip and raw deflate decompression: round trips, and every way a stream can be broken.
final class GzipInflaterTests: XCTestCase {
    let data = pseudoRandomBytes(200_000) + [UInt8](repeating: 7, count: 100_000)

    func testInflatesZlibGzipAndStoredBlockGzip() throws {
        for packed in [Deflate.compress(data, gzip: true), RawFiles.gzipStored(data)] {
            XCTAssertEqual(
                try GzipInflater.inflate(packed, format: .gzip, expectedCount: data.count, file: "f.gz"), data)
        }
    }

    func testInflatesRawDeflate() throws {
        let packed = Deflate.compress(data, gzip: false)
        XCTAssertEqual(
            try GzipInflater.inflate(
                packed, format: .rawDeflate, expectedCount: data.count, file: "a.npz", object: "X.npy"), data)
    }

    func testReadsInPiecesAndAcrossConcatenatedMembers() throws {
        let first = Array(data[..<70_000])
        let second = Array(data[70_000...])
        let packed = Deflate.compress(first, gzip: true) + RawFiles.gzipStored(second)
        let inflater = try GzipInflater(packed, format: .gzip, file: "f.gz")
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 12_345)
        while true {
            let count = try chunk.withUnsafeMutableBytes { try inflater.read(into: $0) }
            output += chunk[..<count]
            if count < chunk.count { break }
        }
        XCTAssertEqual(output, data)
    }

    func testTruncatedStream() {
        let packed = Deflate.compress(data, gzip: true)
        for length in [0, 5, 10, packed.count / 2, packed.count - 4, packed.count - 1] {
            assertDatasetError(file: "f.gz", mentions: [length == 0 ? "empty" : "truncated"]) {
                try GzipInflater.inflate(
                    Array(packed[..<length]), format: .gzip, expectedCount: data.count, file: "f.gz")
            }
        }
    }

    func testCorruptStream() {
        var badCRC = RawFiles.gzipStored(data)
        badCRC[badCRC.count - 6] ^= 0xFF
        assertDatasetError(file: "f.gz", mentions: ["not valid gzip data", "incorrect data check"]) {
            try GzipInflater.inflate(badCRC, format: .gzip, expectedCount: data.count, file: "f.gz")
        }
        var badLength = RawFiles.gzipStored(data)
        badLength[badLength.count - 1] ^= 0x01
        assertDatasetError(file: "f.gz", mentions: ["incorrect length check"]) {
            try GzipInflater.inflate(badLength, format: .gzip, expectedCount: data.count, file: "f.gz")
        }
        var badBlock = Deflate.compress(data, gzip: true)
        badBlock[10] = 0xFF
        assertDatasetError(file: "f.gz", mentions: ["not valid gzip data"]) {
            try GzipInflater.inflate(badBlock, format: .gzip, expectedCount: data.count, file: "f.gz")
        }
        assertDatasetError(file: "f.gz", mentions: ["not valid gzip data", "incorrect header check"]) {
            try GzipInflater.inflate(Array("plain text, not gzip".utf8), format: .gzip, expectedCount: 4, file: "f.gz")
        }
    }

    func testTrailingBytesAndWrongSizes() {
        let packed = RawFiles.gzipStored(data)
        assertDatasetError(file: "f.gz", mentions: ["trailing data"]) {
            try GzipInflater.inflate(packed + [1, 2, 3], format: .gzip, expectedCount: data.count, file: "f.gz")
        }
        assertDatasetError(file: "f.gz", mentions: ["holds more than"]) {
            try GzipInflater.inflate(packed, format: .gzip, expectedCount: data.count - 1, file: "f.gz")
        }
        assertDatasetError(file: "f.gz", mentions: ["decompresses to \(data.count) bytes, expected \(data.count + 1)"])
        {
            try GzipInflater.inflate(packed, format: .gzip, expectedCount: data.count + 1, file: "f.gz")
        }
    }
}
