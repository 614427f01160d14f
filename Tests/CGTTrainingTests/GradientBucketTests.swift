import XCTest

@testable import CGTTraining

/// The gradient buffer's buckets: cut from the end (where the backward pass finishes first),
/// covering every element once, none longer than asked.
final class GradientBucketTests: XCTestCase {
    func testBucketsCoverTheBufferFromTheEnd() {
        XCTAssertEqual(GradientReducer.buckets(count: 10, bucketElements: 4), [6..<10, 2..<6, 0..<2])
        XCTAssertEqual(GradientReducer.buckets(count: 8, bucketElements: 4), [4..<8, 0..<4])
        XCTAssertEqual(GradientReducer.buckets(count: 3, bucketElements: 100), [0..<3])
        XCTAssertEqual(GradientReducer.buckets(count: 0, bucketElements: 4), [])
        // A bucket size below one element still makes progress.
        XCTAssertEqual(GradientReducer.buckets(count: 2, bucketElements: 0), [1..<2, 0..<1])
    }

    func testBucketsPartitionAnyBuffer() {
        for count in [1, 7, 64, 1000, 1_337_000] {
            for size in [1, 3, 256, 262_144] where count / size < 100_000 {
                let buckets = GradientReducer.buckets(count: count, bucketElements: size)
                XCTAssertEqual(buckets.first?.upperBound, count)
                XCTAssertEqual(buckets.last?.lowerBound, 0)
                XCTAssertTrue(
                    zip(buckets, buckets.dropFirst()).allSatisfy { $0.lowerBound == $1.upperBound },
                    "contiguous, in backward order")
                XCTAssertTrue(buckets.allSatisfy { !$0.isEmpty && $0.count <= size })
                XCTAssertEqual(buckets.count, (count + size - 1) / size)
            }
        }
    }
}
