import CGTCheckpoint
import CGTData
import CGTFiles
import CGTJob
import CGTModel
import CGTTestSupport
import XCTest

@testable import CGTEvaluation
@testable import CGTTraining

/// Evaluation in blocks of bounded size scores what evaluation of the whole split scores, bit
/// for bit; the BatchNorm re-estimation is a bounded, seeded subset of the training split of
/// which each rank reads about 1/R, and its batches do not depend on the number of ranks.
final class StreamingEvaluationTests: XCTestCase {
    let directory = TemporaryDirectory("streaming-evaluation")

    private func job(data: String, _ extra: [String] = []) throws -> Job {
        try JobLoader.parse(
            "name: streaming", source: "test",
            overrides: [
                "data.path=\(data)", "model.hidden=[24, 24]", "model.exits=[1, 2]", "model.batchnorm=true",
                "model.dropout=0.3", "training.epochs=3", "training.batch_size=32",
            ] + extra)
    }

    private func trained(_ job: Job, folder: String) throws -> Trainer {
        let trainer = try Trainer(
            job: job, run: RunDirectory(path: directory.file(folder)), communicator: nil, resume: false,
            progress: ProgressReporter(enabled: false))
        try trainer.run()
        return trainer
    }

    func testStreamedEvaluationEqualsWholeSplitBitwise() throws {
        let data = try Fixtures.writeDataset(
            in: directory, features: 12, classes: 4, train: 256, test: 203, validation: 37, spread: 1.5)
        let trainer = try trained(try job(data: data), folder: "run")
        let reader = try DatasetReader(path: data)
        defer { try? reader.close() }
        var evaluation = DistributedEvaluation(
            network: trainer.network, ranks: OneProcess(), batchSize: 8, classGroups: nil)
        let whole = try evaluation.records(.held(try reader.read(split: .test)))
        XCTAssertEqual(whole.count, 203)
        for batches in [1, 2, 5] {
            evaluation.blockBatches = batches
            XCTAssertEqual(evaluation.blockRows, 8 * batches)
            let share = try evaluation.share(of: .test, reader: reader)
            guard case .streamed(_, .test, let rows) = share else { return XCTFail("203 rows fit no block") }
            XCTAssertEqual(rows, 0..<203)
            XCTAssertEqual(try evaluation.records(share), whole, "blocks of \(batches) batches")
            XCTAssertEqual(
                try evaluation.statistics(share, tau: 0.8),
                try evaluation.statistics(try reader.read(split: .test), tau: 0.8))
        }
        evaluation.blockBatches = 100
        guard case .held(let held) = try evaluation.share(of: .validation, reader: reader) else {
            return XCTFail("37 rows fit one block of 800")
        }
        XCTAssertEqual(held.count, 37)
        XCTAssertEqual(
            try evaluation.records(.held(held)), try evaluation.records(.held(try reader.read(split: .validation))))
    }

    /// A block holds whole batches, at least one, and within a sixteenth of the budget.
    func testABlockHoldsWholeBatchesWithinTheBudget() {
        XCTAssertEqual(EvaluationBlock.rows(featureCount: 100, batchSize: 64, budget: 1 << 30), 167_744)
        XCTAssertEqual(EvaluationBlock.rows(featureCount: 100, batchSize: 64, budget: 1 << 30) % 64, 0)
        XCTAssertLessThanOrEqual(EvaluationBlock.rows(featureCount: 100, batchSize: 64, budget: 1 << 30) * 400, 1 << 26)
        XCTAssertEqual(EvaluationBlock.rows(featureCount: 100_000, batchSize: 64, budget: 1 << 20), 64)
    }

    /// Any number of ranks forms exactly the batches of one process, in the same order; the
    /// subset is bounded, has no repeated row, and is the same whatever the rank count.
    func testRecalibrationBatchesDoNotDependOnTheRankCount() {
        for (count, batch, maxBatches, chunk) in [(2000, 64, 20, 55), (150, 16, 200, 1365), (1000, 100, 3, 7)] {
            let plan = RecalibrationPlan(
                sampleCount: count, globalBatch: batch, maxBatches: maxBatches, blockRows: chunk, seed: 7)
            XCTAssertEqual(plan.batchCount, min(maxBatches, count / batch))
            let stream = plan.blockRows(of: 0..<plan.rowCount).flatMap(\.rows)
            XCTAssertEqual(stream.count, plan.rowCount)
            XCTAssertEqual(Set(stream).count, stream.count, "no row twice")
            func batches(ranks: Int) -> [[Int]] {
                var formed = [[Int]](repeating: [], count: plan.batchCount)
                for rank in 0..<ranks {
                    let rows = plan.blockRows(of: plan.piece(rank: rank, of: ranks)).flatMap(\.rows)
                    for (k, positions) in plan.batches(rank: rank, of: ranks).enumerated() {
                        formed[k] += positions.map { rows[$0] }
                    }
                }
                return formed
            }
            let one = batches(ranks: 1)
            XCTAssertEqual(one.map(\.count), Array(repeating: plan.batchRows, count: plan.batchCount))
            for ranks in [2, 3, 5] { XCTAssertEqual(batches(ranks: ranks), one, "\(ranks) ranks") }
        }
    }

    /// Each rank reads about 1/R of the re-estimation's rows and chunks: its piece, plus at most
    /// the two chunks it shares with its neighbours; and a bounded number in all.
    func testEachRankReadsAboutOneRankthOfTheRecalibrationRows() throws {
        // 300 features: chunks of 55 rows (64 KiB). 40 batches of 32 rows: 1280 of 4000 rows.
        let data = try Fixtures.writeDataset(in: directory, features: 300, classes: 3, train: 4000, test: 20)
        let job = try job(data: data, ["eval.bn_recalibration_batches=40"])
        let reader = try DatasetReader(path: data)
        defer { try? reader.close() }
        let chunkBytes = Int64(55 * 300 * 4)
        // The labels are one chunk of 4,000 rows, counted once per read.
        let labelBytes = Int64(4000 * 4)
        func read(rank: Int, of ranks: Int) throws -> (share: RecalibrationShare, bytes: Int64) {
            let before = reader.counters.bytesDecompressed
            let share = try job.recalibrationShare(reader: reader, rank: rank, ranks: ranks)
            return (share, reader.counters.bytesDecompressed - before)
        }
        let one = try read(rank: 0, of: 1)
        XCTAssertEqual(one.share.batches.map(\.count), Array(repeating: 32, count: 40))
        XCTAssertLessThanOrEqual(one.share.data.count, 1280 + 55, "the rows of the subset's blocks")
        XCTAssertLessThanOrEqual(one.bytes, Int64((1280 + 2 * 55) * 300 * 4) + labelBytes, "the subset's chunks only")
        let wholeSplit = try reader.read(split: .train)
        for ranks in [2, 4] {
            var total: Int64 = 0
            for rank in 0..<ranks {
                let (share, bytes) = try read(rank: rank, of: ranks)
                XCTAssertEqual(share.batches.reduce(0) { $0 + $1.count }, 1280 / ranks)
                XCTAssertLessThanOrEqual(
                    share.data.count, 1280 / ranks + 2 * 55, "its piece and the rest of the two chunks at its edges")
                XCTAssertLessThanOrEqual(
                    bytes, one.bytes / Int64(ranks) + 2 * chunkBytes + labelBytes,
                    "rank \(rank) of \(ranks) reads about 1/\(ranks)")
                total += bytes
                // The rows read are the split's rows, features and labels.
                for (i, id) in share.data.sampleIDs.enumerated() {
                    XCTAssertEqual(share.data.labels[i], wholeSplit.labels[Int(id)])
                    XCTAssertEqual(
                        share.data.features[(i * 300)..<((i + 1) * 300)],
                        wholeSplit.features[(Int(id) * 300)..<((Int(id) + 1) * 300)])
                }
            }
            XCTAssertLessThanOrEqual(total, one.bytes + Int64(ranks - 1) * (2 * chunkBytes + labelBytes))
        }
    }

    /// The model saved with re-estimated statistics, evaluated again without re-estimating and
    /// streamed in blocks of one batch, gives exactly the numbers training's evaluation reported.
    func testTheSavedModelIsTheEvaluatedOneWhenStreamed() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 12, classes: 3, train: 300, test: 97, spread: 2)
        let trainer = try trained(try job(data: data, ["eval.batch_size=16"]), folder: "saved")
        let reported = try trainer.testStatistics()
        let stored = try Checkpoint.read(from: trainer.runDirectory.lastCheckpoint)
        XCTAssertEqual(stored.batchNormStatistics, "re-estimated")
        XCTAssertNotEqual(stored.model["blocks.0.bn.running_mean"], stored.trainingBuffers?["blocks.0.bn.running_mean"])
        let reader = try DatasetReader(path: data)
        defer { try? reader.close() }
        let network = try stored.restoredNetwork(for: reader, dataPath: data, source: "last.h5")
        var evaluation = DistributedEvaluation(network: network, ranks: OneProcess(), batchSize: 16, classGroups: nil)
        evaluation.blockBatches = 1
        let share = try evaluation.share(of: .test, reader: reader)
        guard case .streamed = share else { return XCTFail("97 rows are more than a block of 16") }
        XCTAssertEqual(try evaluation.statistics(share, tau: stored.job.eval.tau), reported)
    }
}
