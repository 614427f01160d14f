import CGTRandom
import CGTTestSupport
import Foundation
import XCTest

/// Stop signals at every kind of moment of a 2-rank run: each ends with status 75, one
/// "stopped by" line and a whole checkpoint, and a sample of the stopped runs, requeued, end
/// bitwise where an uninterrupted run ends.
///
/// The signals come from inside the work (`CGT_TEST_SIGNAL`, `SignalDrill`): a step, the
/// read-ahead thread, a checkpoint write, the BatchNorm re-estimation, an evaluation, and the
/// process's first moments before MPI starts. Which place, visit, rank and signal is drawn
/// from a seeded generator, so a failure names a run that fails again the same way.
/// `launch/stop-stress` sends signals from outside at random moments instead, also under
/// ThreadSanitizer or AddressSanitizer.
final class StopSignalStressTests: XCTestCase {
    let directory = TemporaryDirectory("stop-stress")

    /// One drill: where rank `rank` sends itself `signal`, on which visit of the place.
    struct Drill: CustomStringConvertible {
        let signal: String
        let rank: Int
        let place: String
        let visit: Int
        var environment: String { "\(signal):\(rank):\(place):\(visit)" }
        var description: String { "SIG\(signal) on rank \(rank) at visit \(visit) of \(place)" }
    }

    /// 3 epochs of 8 steps; every epoch ends with a BatchNorm re-estimation, an evaluation and a
    /// checkpoint. Drills stay before the last epoch's end, where training is over and a run
    /// finishes instead (status 0).
    static func drills(count: Int, seed: UInt64) -> [Drill] {
        var generator = SeededGenerator(seed: seed)
        return (0..<count).map { _ in
            let signal = ["USR1", "TERM"].randomElement(using: &generator)!
            let rank = Int.random(in: 0...1, using: &generator)
            switch Int.random(in: 0..<6, using: &generator) {
            case 0: return Drill(signal: signal, rank: rank, place: "startup", visit: 1)
            case 1:
                return Drill(signal: signal, rank: rank, place: "step", visit: .random(in: 1...23, using: &generator))
            case 2:
                return Drill(
                    signal: signal, rank: rank, place: "read-ahead", visit: .random(in: 1...2, using: &generator))
            // Rank 0 writes every checkpoint.
            case 3:
                return Drill(signal: signal, rank: 0, place: "checkpoint", visit: .random(in: 1...2, using: &generator))
            case 4:
                return Drill(
                    signal: signal, rank: rank, place: "recalibration", visit: .random(in: 1...2, using: &generator))
            default:
                return Drill(
                    signal: signal, rank: rank, place: "evaluation", visit: .random(in: 1...2, using: &generator))
            }
        }
    }

    func testFiftyStopSignalsAtEveryKindOfMomentEndCleanly() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 8, classes: 3, train: 256, test: 48, spread: 2)
        let job = try directory.write(
            """
            model: {hidden: [16, 16], exits: [1, 2], batchnorm: true, dropout: 0.1}
            training: {epochs: 3, batch_size: 32, sync_batchnorm: true, checkpoint_every: 1}
            eval: {every_epochs: 1, bn_recalibration: true}
            """, to: "job.yaml")
        let straight = directory.file("straight")
        let first = try CommandRunner.mpirun(ranks: 2, ["train", job, "--data", data, "--out", straight, "--quiet"])
        XCTAssertEqual(first.status, 0, first.stderr)
        let expected = try checkpointTensors("\(straight)/checkpoints/last.h5")
        for (index, drill) in Self.drills(count: 50, seed: 29).enumerated() {
            let run = directory.file("run-\(index)")
            let arguments = ["train", job, "--data", data, "--out", run, "--quiet"]
            let stopped = try CommandRunner.mpirun(
                ranks: 2, arguments, environment: ["CGT_TEST_SIGNAL": drill.environment])
            XCTAssertEqual(stopped.status, 75, "run \(index), \(drill): \(stopped.stderr)")
            let lines = stopped.stderr.split(separator: "\n").filter {
                $0.hasPrefix("cgt: stopped by SIG\(drill.signal)")
            }
            XCTAssertEqual(lines.count, 1, "run \(index), \(drill): \(stopped.stderr)")
            guard let line = lines.first, let wrote = line.range(of: "; wrote ") else { continue }
            let checkpoint = String(line[wrote.upperBound...].prefix { $0 != "," })
            XCTAssertNoThrow(try checkpointTensors(checkpoint), "run \(index), \(drill): \(checkpoint) is whole")
            // Every fifth run is requeued as Slurm does it and must end where the straight run ends.
            guard index % 5 == 0 else { continue }
            let resumed = try CommandRunner.mpirun(
                ranks: 2, arguments, environment: ["SLURM_RESTART_COUNT": "1"])
            XCTAssertEqual(resumed.status, 0, "run \(index), \(drill), resumed: \(resumed.stderr)")
            XCTAssertEqual(
                try checkpointTensors("\(run)/checkpoints/last.h5"), expected,
                "run \(index), \(drill): resumed equals straight")
        }
    }

    /// A signal the job does not list keeps its default action even when it comes before the
    /// job file is read (the early block hands it back); a listed one that early waits for the
    /// first step and stops there.
    func testAnEarlySignalIsAStopOnlyWhenTheJobListsIt() throws {
        let data = try Fixtures.writeDataset(in: directory, features: 8, classes: 3, train: 64, test: 16)
        let job = try directory.write(
            """
            model: {hidden: [8], exits: [1]}
            training: {epochs: 2, batch_size: 16}
            runtime: {stop_signals: [USR1]}
            """, to: "usr1-only.yaml")
        // Without exec, the shell reports a child a signal ended as 128 + the signal.
        func train(_ drill: String, out: String) throws -> CommandResult {
            try CommandRunner.run(
                "/bin/sh",
                [
                    "-c", "\"$0\" \"$@\"; exit $?", CommandRunner.cgt, "train", job, "--data", data, "--out",
                    directory.file(out), "--quiet",
                ],
                environment: ["CGT_TEST_SIGNAL": drill])
        }
        let unlisted = try train("TERM:0:startup:1", out: "unlisted")
        XCTAssertEqual(unlisted.status, 128 + SIGTERM, unlisted.stderr)
        let listed = try train("USR1:0:startup:1", out: "listed")
        XCTAssertEqual(listed.status, 75, listed.stderr)
        XCTAssertTrue(listed.stderr.contains("stopped by SIGUSR1 at step 1 of epoch 1"), listed.stderr)
    }
}
