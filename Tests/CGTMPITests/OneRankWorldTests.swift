import XCTest

@testable import CGTMPI

/// The MPI wrapper in a world of one process, started without mpirun (an MPI singleton): the
/// collectives are identities, failures are agreed on by the one rank, and `MPIEnvironment.run`
/// reports a failure once and rethrows it. MPI starts once per process, so one test holds all.
/// Several ranks are tested under mpirun in CGTCommandTests.
final class OneRankWorldTests: XCTestCase {
    struct Marker: Error, Equatable { let code: Int }

    func testCollectivesOfOneRankAndFailureReporting() throws {
        var reported: [Error] = []
        XCTAssertThrowsError(
            try MPIEnvironment.run(report: { reported.append($0) }) { mpi in
                let world = mpi.world
                XCTAssertEqual(world.rank, 0)
                XCTAssertEqual(world.size, 1)
                XCTAssertTrue(world.isRoot)

                var floats: [Float] = [1.5, -2, 3]
                try floats.withUnsafeMutableBufferPointer { try world.allReduceSum($0) }
                XCTAssertEqual(floats, [1.5, -2, 3])
                var doubles: [Double] = [0.25, 4]
                try doubles.withUnsafeMutableBufferPointer { try world.allReduceSum($0) }
                XCTAssertEqual(doubles, [0.25, 4])
                XCTAssertEqual(try world.sum(2.5), 2.5)
                XCTAssertEqual(try world.allGather(Int64(7)), [7])
                XCTAssertEqual(try world.allGather(bytes: [1, 2, 3]), [[1, 2, 3]])
                XCTAssertEqual(try world.broadcast(string: "job"), "job")
                XCTAssertEqual(try world.firstRank(where: true), 0)
                XCTAssertNil(try world.firstRank(where: false))

                // A failure known to the one rank is agreed on and reported by it.
                XCTAssertEqual(try world.collectively { 42 }, 42)
                XCTAssertThrowsError(try world.collectively { () throws -> Int in throw Marker(code: 1) }) { error in
                    let agreed = error as? AgreedFailure
                    XCTAssertEqual(agreed?.isReporter, true)
                    XCTAssertEqual(agreed?.reportingRank, 0)
                    XCTAssertEqual(agreed?.underlying as? Marker, Marker(code: 1))
                }

                let half = try world.split(color: 0, key: 0)
                XCTAssertEqual(half.size, 1)
                let counter = try SharedCounter(communicator: world, initial: 5)
                XCTAssertEqual(try counter.fetchAndAdd(1), 5)
                XCTAssertEqual(try counter.fetchAndAdd(2), 6)
                XCTAssertEqual(try counter.fetchAndAdd(0), 8)
                try counter.free()

                throw Marker(code: 2)
            }
        ) { error in
            XCTAssertEqual(error as? Marker, Marker(code: 2), "\(error)")
        }
        XCTAssertEqual(reported.count, 1, "a failure of this rank alone is reported once")
        XCTAssertEqual(reported.first as? Marker, Marker(code: 2))
    }
}
