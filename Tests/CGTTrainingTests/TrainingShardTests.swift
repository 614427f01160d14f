import CGTData
import CGTTestSupport
import XCTest

@testable import CGTTraining

/// `training.shuffle: blocks` read through `TrainingShard`: the rows each rank trains on, step
/// by step, from a real file, and the warning about chunks too large for the ranks' pieces.
final class TrainingShardTests: XCTestCase {
    let directory = TemporaryDirectory("blocks")

    /// The samples each rank trains on, step by step, as the training loop takes them from a
    /// real file: (rank, step) -> sample ids.
    func steps(_ path: String, ranks: Int, batch: Int, seed: UInt64, epoch: Int) throws -> [[[Int64]]] {
        let reader = try DatasetReader(path: path)
        defer { try? reader.close() }
        return try (0..<ranks).map { rank in
            let shard = try TrainingShard(
                reader: reader, rank: rank, ranks: ranks, seed: seed, globalBatch: batch, mode: .blocks)
            try shard.prepare(epoch: epoch)
            let plan = BatchPlan(sampleCount: reader.splitSizes[.train]!, globalBatch: batch, ranks: ranks)
            XCTAssertEqual(shard.stepsPerEpoch, plan.stepsPerEpoch)
            return (0..<shard.stepsPerEpoch).map { step in
                XCTAssertEqual(shard.globalCount(step: step), plan.globalRange(step: step).count)
                return shard.positions(step: step).map { shard.data.sampleIDs[$0] }
            }
        }
    }

    /// Read through `TrainingShard` from a file the rule cuts into 19 chunks: each epoch every
    /// sample is trained on exactly once over all ranks and steps, each step's samples over the
    /// ranks are as many as the step's global batch, the batches are the same for the same
    /// (seed, epoch, ranks) and differ with any of the three.
    func testEveryRankTrainsOnItsShareAndEverySampleOncePerEpoch() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 300, classes: 3, train: 1001, test: 30)
        XCTAssertEqual(try DatasetReader(path: data).chunkRows(of: .train), 55)
        for ranks in [1, 2, 3] {
            for epoch in 0..<2 {
                let batches = try steps(data, ranks: ranks, batch: 48, seed: 4, epoch: epoch)
                XCTAssertEqual(batches.flatMap { $0.flatMap { $0 } }.sorted(), (0..<1001).map(Int64.init))
                for step in 0..<batches[0].count {
                    XCTAssertEqual(
                        batches.map { $0[step].count }.reduce(0, +),
                        BatchPlan(sampleCount: 1001, globalBatch: 48, ranks: ranks).globalRange(step: step).count)
                }
                XCTAssertEqual(batches, try steps(data, ranks: ranks, batch: 48, seed: 4, epoch: epoch))
            }
        }
        let reference = try steps(data, ranks: 2, batch: 48, seed: 4, epoch: 0)
        XCTAssertNotEqual(reference, try steps(data, ranks: 2, batch: 48, seed: 5, epoch: 0))
        XCTAssertNotEqual(reference, try steps(data, ranks: 2, batch: 48, seed: 4, epoch: 1))
        let three = try steps(data, ranks: 3, batch: 48, seed: 4, epoch: 0)
        XCTAssertNotEqual(
            (0..<reference.count).map { step in Set(reference.flatMap { $0[step] }) },
            (0..<three[0].count).map { step in Set(three.flatMap { $0[step] }) },
            "which samples meet in a step depends on the number of ranks")
    }

    /// A single-chunk split (a small file) trains every sample once per epoch too, without a
    /// warning; chunks larger than the rule writes and than half a piece are warned about once,
    /// in one line that names the file, the chunks and the fix.
    func testLargeChunksAreWarnedAboutAndASmallFileIsNot() throws {
        let small = try Fixtures.writeDataset(in: directory, name: "small.h5", features: 10, train: 150, test: 30)
        XCTAssertEqual(try DatasetReader(path: small).chunkRows(of: .train), 150, "one chunk")
        let batches = try steps(small, ranks: 3, batch: 30, seed: 1, epoch: 0)
        XCTAssertEqual(batches.flatMap { $0.flatMap { $0 } }.sorted(), (0..<150).map(Int64.init))
        let fine = try Fixtures.writeDataset(in: directory, name: "fine.h5", features: 300, train: 1001, test: 30)
        let coarse = directory.file("coarse.h5")
        let repack = try runTool("/usr/bin/h5repack", ["-l", "/train/x:CHUNK=600x300", fine, coarse])
        XCTAssertEqual(repack.status, 0, repack.output)
        func warning(_ path: String, ranks: Int) throws -> String? {
            let reader = try DatasetReader(path: path)
            defer { try? reader.close() }
            return try TrainingShard(reader: reader, rank: 0, ranks: ranks, seed: 0, globalBatch: 48, mode: .blocks)
                .blockLayoutWarning
        }
        XCTAssertNil(try warning(small, ranks: 3))
        XCTAssertNil(try warning(fine, ranks: 4))
        XCTAssertNil(try warning(coarse, ranks: 1))
        let message = try XCTUnwrap(try warning(coarse, ranks: 2))
        XCTAssertFalse(message.contains("\n"))
        for part in [
            coarse, "/train/x has chunks of 600 rows", "500-row piece on 2 ranks", "instead of about 1/2",
            "chunks of 55 rows", "h5repack -l /train/x:CHUNK=55x300",
        ] {
            XCTAssertTrue(message.contains(part), "\(part) in \(message)")
        }
    }
}
