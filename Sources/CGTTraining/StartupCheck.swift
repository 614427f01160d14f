import CGTJob
import CGTMPI
import Foundation

/// Makes sure every rank runs the same job with the same binary before any work starts.
///
/// A job file that differs between nodes, a `--set` given to some ranks only, or a stale
/// binary on one node would otherwise train silently wrong; a Slurm launch without PMI
/// support would start N separate 1-rank jobs.
public enum StartupCheck {
    /// FNV-1a, 64 bits: enough to tell two jobs or binaries apart, and fast on a whole binary.
    static func fingerprint<S: Sequence>(_ bytes: S) -> UInt64 where S.Element == UInt8 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01B3
        }
        return hash
    }

    static func binaryFingerprint() -> UInt64 {
        guard let data = FileManager.default.contents(atPath: "/proc/self/exe") else { return 0 }
        return data.withUnsafeBytes { fingerprint($0) }
    }

    /// Checks `SLURM_NTASKS` against the world size (each rank on its own: no collective).
    public static func checkLauncher(
        worldSize: Int, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws {
        if let tasks = environment["SLURM_NTASKS"].flatMap(Int.init), tasks != worldSize,
            environment["CGT_IGNORE_SLURM"] == nil
        {
            throw JobError(
                source: "launch", key: "",
                "SLURM_NTASKS is \(tasks) but MPI started a world of \(worldSize) rank(s): srun is starting independent processes (use srun --mpi=pmix, or mpirun inside the allocation; CGT_IGNORE_SLURM=1 skips this check)"
            )
        }
    }

    /// Compares the resolved job and the binary of every rank with rank 0's; a collective.
    /// Every rank reaches the same verdict, so a mismatch is an agreed failure reported by rank 0.
    public static func verify(_ job: Job, world: Communicator) throws {
        let jobHash = Int64(bitPattern: fingerprint(Array(try JobLoader.yaml(job).utf8)))
        let binaryHash = Int64(bitPattern: binaryFingerprint())
        let jobs = try world.allGather(jobHash)
        let binaries = try world.allGather(binaryHash)
        func hex(_ v: Int64) -> String { String(UInt64(bitPattern: v), radix: 16) }
        if let r = jobs.firstIndex(where: { $0 != jobs[0] }) {
            throw AgreedFailure(
                underlying: JobError(
                    source: "ranks", key: "",
                    "rank \(r) resolved a different job than rank 0 (job fingerprint \(hex(jobs[r])) vs \(hex(jobs[0]))): give every rank the same job file and --set options"
                ),
                reportingRank: 0, isReporter: world.rank == 0)
        }
        if let r = binaries.firstIndex(where: { $0 != binaries[0] }) {
            throw AgreedFailure(
                underlying: JobError(
                    source: "ranks", key: "",
                    "rank \(r) runs a different cgt binary than rank 0 (fingerprint \(hex(binaries[r])) vs \(hex(binaries[0]))): install the same build on every node"
                ),
                reportingRank: 0, isReporter: world.rank == 0)
        }
    }
}
