import CGTHDF5
import XCTest

final class HDF5DatasetTests: XCTestCase {
    private var path = ""

    override func setUpWithError() throws {
        path = try makeTemporaryDirectory(self).appendingPathComponent("data.h5").path
    }

    /// 10 rows of 3 columns; element (r, c) is 10 * r + c, so every row is recognisable.
    private let rows10x3: [Float] = (0..<10).flatMap { r in (0..<3).map { c in Float(10 * r + c) } }

    private func writeRows10x3(chunkRows: Int? = nil, deflateLevel: Int? = nil, shuffle: Bool = false) throws {
        try withNewHDF5File(path) { file in
            try file.root.writeDataset(
                "train/x", rows10x3, shape: [10, 3], chunkRows: chunkRows, deflateLevel: deflateLevel, shuffle: shuffle)
        }
    }

    private func roundTrip<T: HDF5Scalar & Equatable>(
        _ values: [T], as type: HDF5ElementType, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        try withNewHDF5File(path) { try $0.root.writeDataset("v", values, shape: [2, values.count / 2]) }
        try withOpenHDF5File(path) { h5 in
            let dataset = try h5.root.openDataset("v")
            XCTAssertEqual(dataset.elementType, type, file: file, line: line)
            XCTAssertEqual(dataset.shape, [2, values.count / 2], file: file, line: line)
            XCTAssertEqual(try dataset.readAll(as: T.self), values, file: file, line: line)
        }
    }

    func testEveryScalarTypeRoundTrips() throws {
        try roundTrip([Float(1.5), -2, .greatestFiniteMagnitude, .leastNonzeroMagnitude], as: .float32)
        try roundTrip([1.25, -3e300, .pi, 0], as: .float64)
        try roundTrip([Int8.min, -1, 0, .max], as: .int8)
        try roundTrip([Int16.min, -1, 0, .max], as: .int16)
        try roundTrip([Int32.min, -1, 0, .max], as: .int32)
        try roundTrip([Int64.min, -1, 0, .max], as: .int64)
        try roundTrip([UInt8.min, 1, 2, .max], as: .uint8)
        try roundTrip([UInt16.min, 1, 2, .max], as: .uint16)
        try roundTrip([UInt32.min, 1, 2, .max], as: .uint32)
        try roundTrip([UInt64.min, 1, 2, .max], as: .uint64)
        XCTAssertEqual(HDF5ElementType.uint16.description, "uint16")
    }

    func testContiguousDatasetHasNoChunksOrFilters() throws {
        try writeRows10x3(deflateLevel: 4, shuffle: true)
        try withOpenHDF5File(path) { file in
            let dataset = try file.root.openDataset("/train/x")
            XCTAssertNil(dataset.chunkShape)
            XCTAssertEqual(dataset.filters, [])
            XCTAssertEqual(dataset.path, "/train/x")
            XCTAssertEqual(dataset.filePath, path)
        }
    }

    func testChunkedShuffledDeflatedDatasetReportsLayoutAndReadsBack() throws {
        try writeRows10x3(chunkRows: 4, deflateLevel: 6, shuffle: true)
        try withOpenHDF5File(path) { file in
            let dataset = try file.root.openGroup("train").openDataset("x")
            XCTAssertEqual(dataset.chunkShape, [4, 3])
            XCTAssertEqual(dataset.filters, ["shuffle", "deflate"])
            XCTAssertEqual(try dataset.readAll(as: Float.self), rows10x3)
        }
    }

    func testChunkRowsAreClampedToTheRowCount() throws {
        try writeRows10x3(chunkRows: 1000)
        try withOpenHDF5File(path) { XCTAssertEqual(try $0.root.openDataset("train/x").chunkShape, [10, 3]) }
    }

    func testRowRangeReadReturnsThoseRows() throws {
        try writeRows10x3(chunkRows: 3)
        try withOpenHDF5File(path) { file in
            let dataset = try file.root.openDataset("train/x")
            var buffer = [Float](repeating: -1, count: 4 * 3)
            try buffer.withUnsafeMutableBufferPointer { try dataset.read(rows: 2..<6, into: $0) }
            XCTAssertEqual(buffer, Array(rows10x3[6..<18]))
            var empty: [Float] = []
            try empty.withUnsafeMutableBufferPointer { try dataset.read(rows: 10..<10, into: $0) }
        }
    }

    func testRowIndicesReadFollowsTheRequestedOrderIncludingRepeats() throws {
        try writeRows10x3(chunkRows: 4, deflateLevel: 1)
        try withOpenHDF5File(path) { file in
            let dataset = try file.root.openDataset("train/x")
            for indices in [[1, 2, 3, 7], [9, 0, 4, 3, 8], [5, 5, 1, 5], [6], []] {
                var buffer = [Float](repeating: -1, count: indices.count * 3)
                try buffer.withUnsafeMutableBufferPointer { try dataset.read(rowIndices: indices, into: $0) }
                let expected = indices.flatMap { rows10x3[(3 * $0)..<(3 * $0 + 3)] }
                XCTAssertEqual(buffer, expected, "rows \(indices)")
            }
        }
    }

    func testOutOfRangeRowsThrow() throws {
        try writeRows10x3()
        try withOpenHDF5File(path) { file in
            let dataset = try file.root.openDataset("train/x")
            var buffer = [Float](repeating: 0, count: 3 * 3)
            XCTAssertThrowsError(try buffer.withUnsafeMutableBufferPointer { try dataset.read(rows: 8..<11, into: $0) })
            {
                let error = $0 as? HDF5Error
                XCTAssertEqual(error?.object, "/train/x")
                XCTAssertTrue(error?.description.contains("out of range") ?? false, "\($0)")
            }
            XCTAssertThrowsError(
                try buffer.withUnsafeMutableBufferPointer { try dataset.read(rowIndices: [0, 10, 1], into: $0) }
            ) {
                XCTAssertTrue(($0 as? HDF5Error)?.message.contains("row index 10") ?? false, "\($0)")
            }
            XCTAssertThrowsError(
                try buffer.withUnsafeMutableBufferPointer { try dataset.read(rowIndices: [0, -1, 1], into: $0) })
        }
    }

    func testFloat32DataReadsIntoDouble() throws {
        try writeRows10x3()
        try withOpenHDF5File(path) { file in
            let dataset = try file.root.openDataset("train/x")
            XCTAssertEqual(dataset.elementType, .float32)
            XCTAssertEqual(try dataset.readAll(as: Double.self), rows10x3.map(Double.init))
            var row = [Double](repeating: 0, count: 3)
            try row.withUnsafeMutableBufferPointer { try dataset.read(rows: 9..<10, into: $0) }
            XCTAssertEqual(row, [90, 91, 92])
        }
    }

    func testRowRangeWriteChangesOnlyThoseRows() throws {
        try writeRows10x3(chunkRows: 4)
        try withOpenHDF5File(path, writable: true) { file in
            let dataset = try file.root.openDataset("train/x")
            let replacement: [Float] = [-1, -2, -3, -4, -5, -6]
            try replacement.withUnsafeBufferPointer { try dataset.write($0, rows: 3..<5) }
        }
        var expected = rows10x3
        expected.replaceSubrange(9..<15, with: [-1, -2, -3, -4, -5, -6])
        try withOpenHDF5File(path) {
            XCTAssertEqual(try $0.root.openDataset("train/x").readAll(as: Float.self), expected)
        }
    }

    func testCreatedDatasetIsWrittenWhole() throws {
        let labels: [Int32] = [3, 1, 4, 1, 5]
        try withNewHDF5File(path) { file in
            let dataset = try file.root.createDataset("y", type: .int64, shape: [5])
            try labels.withUnsafeBufferPointer { try dataset.write($0) }
        }
        try withOpenHDF5File(path) { file in
            let dataset = try file.root.openDataset("y")
            XCTAssertEqual(dataset.elementType, .int64)
            XCTAssertEqual(try dataset.readAll(as: Int32.self), labels)
        }
    }

    func testScalarAndEmptyDatasets() throws {
        try withNewHDF5File(path) { file in
            try file.root.writeDataset("scalar", [2.5], shape: [])
            try file.root.writeDataset("empty", [Float](), shape: [0, 4], chunkRows: 8)
        }
        try withOpenHDF5File(path) { file in
            let scalar = try file.root.openDataset("scalar")
            XCTAssertEqual(scalar.shape, [])
            XCTAssertEqual(try scalar.readAll(as: Double.self), [2.5])
            let empty = try file.root.openDataset("empty")
            XCTAssertEqual(empty.shape, [0, 4])
            XCTAssertNil(empty.chunkShape)
            XCTAssertEqual(try empty.readAll(as: Float.self), [])
        }
    }
}
