import CGTData
import CGTJob
import CGTKernels
import CGTTestSupport
import XCTest

@testable import CGTTraining

/// `training.shuffle: blocks` read through `TrainingShard`: the rows each rank trains on, step
/// by step, from a real file, and the warning about chunks too large for the ranks' pieces.
final class TrainingShardTests: XCTestCase {
    let directory = TemporaryDirectory("blocks")

    /// The samples each rank trains on, step by step, as the training loop takes them from a
    /// real file: (rank, step) -> sample ids, from step `first` of a fresh shard (a resumed
    /// epoch). Every sample's features and label are checked against the file's row.
    func steps(
        _ path: String, ranks: Int, batch: Int, seed: UInt64, epoch: Int, mode: ShuffleMode = .blocks,
        residency: ShardResidency = .held, from first: Int = 0
    ) throws -> [[[Int64]]] {
        let reader = try DatasetReader(path: path)
        defer { try? reader.close() }
        let whole = try reader.read(split: .train)
        let width = reader.featureCount
        return try (0..<ranks).map { rank in
            let shard = try TrainingShard(
                reader: reader, rank: rank, ranks: ranks, seed: seed, globalBatch: batch, mode: mode)
            defer { shard.readThread.stop() }
            shard.adopt(residency, resumed: nil)
            try shard.prepare(epoch: epoch)
            let plan = BatchPlan(sampleCount: reader.splitSizes[.train]!, globalBatch: batch, ranks: ranks)
            XCTAssertEqual(shard.stepsPerEpoch, plan.stepsPerEpoch)
            return try withBatchBuffers(shard.maxLocalBatch, featureCount: width) { x, y, ids in
                try (first..<shard.stepsPerEpoch).map { step in
                    XCTAssertEqual(shard.globalCount(step: step), plan.globalRange(step: step).count)
                    let count = try shard.gather(step: step, features: x, labels: y, sampleIDs: ids)
                    for row in 0..<count {
                        let id = Int(ids[row])
                        XCTAssertEqual(y[row], whole.labels[id])
                        XCTAssertEqual(
                            Array(x[(row * width)..<((row + 1) * width)]),
                            Array(whole.features[(id * width)..<((id + 1) * width)]))
                    }
                    return Array(ids[0..<count])
                }
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

    /// A piece larger than its shuffle buffer streams through it: every sample once per epoch
    /// over all ranks and steps, each step as large as in a held epoch, the same batches for
    /// the same (seed, epoch, ranks, buffer) and others for another buffer; a buffer holding
    /// the piece gives the held epoch's batches.
    func testAStreamedEpochTrainsEverySampleOnceThroughItsBuffer() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 30, classes: 3, train: 1001, test: 30)
        for ranks in [1, 3] {
            let streamed = try steps(
                data, ranks: ranks, batch: 48, seed: 4, epoch: 1, residency: .streamed(bufferRows: 100))
            XCTAssertEqual(streamed.flatMap { $0.flatMap { $0 } }.sorted(), (0..<1001).map(Int64.init))
            let held = try steps(data, ranks: ranks, batch: 48, seed: 4, epoch: 1)
            XCTAssertEqual(streamed.map { $0.map(\.count) }, held.map { $0.map(\.count) })
            XCTAssertNotEqual(streamed, held)
            XCTAssertEqual(
                streamed,
                try steps(data, ranks: ranks, batch: 48, seed: 4, epoch: 1, residency: .streamed(bufferRows: 100)))
            XCTAssertNotEqual(
                streamed,
                try steps(data, ranks: ranks, batch: 48, seed: 4, epoch: 1, residency: .streamed(bufferRows: 101)))
        }
        // A buffer of one sample streams the piece in stream order (nothing to shuffle), and still trains every sample once.
        let one = try steps(data, ranks: 2, batch: 48, seed: 4, epoch: 0, residency: .streamed(bufferRows: 1))
        XCTAssertEqual(one.flatMap { $0.flatMap { $0 } }.sorted(), (0..<1001).map(Int64.init))
    }

    /// `global` mode streamed reads a segment at a time and gives exactly the held epoch's
    /// batches, which are those of one rank.
    func testAStreamedGlobalEpochHasTheHeldBatches() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 30, classes: 3, train: 1001, test: 30)
        for ranks in [1, 2] {
            XCTAssertEqual(
                try steps(
                    data, ranks: ranks, batch: 48, seed: 2, epoch: 3, mode: .global,
                    residency: .streamed(bufferRows: 50)),
                try steps(data, ranks: ranks, batch: 48, seed: 2, epoch: 3, mode: .global))
        }
    }

    /// A fresh shard asked for a step in the middle of a streamed epoch (a resumed run) gives
    /// that step and the rest exactly as an uninterrupted epoch does.
    func testAStreamedEpochResumesMidEpochWithTheSameBatches() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 30, classes: 3, train: 1001, test: 30)
        for mode in [ShuffleMode.blocks, .global] {
            let whole = try steps(
                data, ranks: 2, batch: 48, seed: 9, epoch: 2, mode: mode, residency: .streamed(bufferRows: 70))
            for first in [1, 7, whole[0].count - 1] {
                let resumed = try steps(
                    data, ranks: 2, batch: 48, seed: 9, epoch: 2, mode: mode, residency: .streamed(bufferRows: 70),
                    from: first)
                XCTAssertEqual(resumed, whole.map { Array($0[first...]) }, "\(mode) from step \(first)")
            }
        }
    }

    /// Reading ahead the next streamed epoch while one trains gives the same batches as reading
    /// each epoch when it starts.
    func testReadingAheadAStreamedEpochChangesNothing() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 30, classes: 3, train: 1001, test: 30)
        let reader = try DatasetReader(path: data)
        defer { try? reader.close() }
        let shard = try TrainingShard(reader: reader, rank: 1, ranks: 2, seed: 3, globalBatch: 40, mode: .blocks)
        defer { shard.readThread.stop() }
        shard.adopt(.streamed(bufferRows: 64), resumed: nil)
        var epochs: [[[Int64]]] = []
        try withBatchBuffers(shard.maxLocalBatch, featureCount: reader.featureCount) { x, y, ids in
            for epoch in 0..<3 {
                try shard.prepare(epoch: epoch)
                shard.readAhead(epoch: epoch + 1)
                epochs.append(
                    try (0..<shard.stepsPerEpoch).map { step in
                        Array(ids[0..<(try shard.gather(step: step, features: x, labels: y, sampleIDs: ids))])
                    })
                shard.settle()
            }
        }
        for epoch in 0..<3 {
            XCTAssertEqual(
                epochs[epoch],
                try steps(data, ranks: 2, batch: 40, seed: 3, epoch: epoch, residency: .streamed(bufferRows: 64))[1])
        }
    }
}
