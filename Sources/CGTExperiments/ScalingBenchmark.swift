import CGTEvaluation
import CGTJob
import CGTKernels
import CGTMPI
import CGTModel
import CGTTraining
import Foundation

/// Measures data-parallel scaling of SoftCGT training at a fixed global batch.
///
/// Rank 0 first trains alone with the whole global batch (the other ranks wait at a barrier),
/// then every rank trains with its share, with the gradient all-reduce overlapping the
/// backward pass and without overlap; last, a bare `MPI_Allreduce` of the same gradient
/// buffer gives the practical bound of the reduction.
public struct ScalingBenchmark {
    public let model: BenchmarkModel
    public let globalBatch: Int
    public let steps: Int
    public let bucketKib: Int

    public init(model: BenchmarkModel, globalBatch: Int, steps: Int, bucketKib: Int) {
        self.model = model
        self.globalBatch = globalBatch
        self.steps = steps
        self.bucketKib = bucketKib
    }

    public struct Result: Codable {
        public var ranks: Int
        public var globalBatch: Int
        public var gradientBytes: Int
        public var bucketKib: Int
        public var oneRankSamplesPerSecond: Double
        public var samplesPerSecond: Double
        public var scalingEfficiency: Double
        public var waitFraction: Double
        public var samplesPerSecondWithoutOverlap: Double
        public var waitFractionWithoutOverlap: Double
        public var bareAllreduceMilliseconds: Double
        public var bareAllreduceGBps: Double
        public var bucketedAllreduceMilliseconds: Double
        /// Rank 0's milliseconds per step in each phase, with overlap.
        public var phaseMilliseconds: [String: Double]

        public var report: String {
            """
            ranks: \(ranks), global batch \(globalBatch), gradients \(gradientBytes) bytes in buckets of \(bucketKib) KiB
            1 rank:  \(String(format: "%.0f", oneRankSamplesPerSecond)) samples/s
            \(ranks) ranks: \(String(format: "%.0f", samplesPerSecond)) samples/s with overlap (scaling efficiency \(String(format: "%.3f", scalingEfficiency)), \(String(format: "%.1f", waitFraction * 100))% of step time waiting in all-reduce)
                     \(String(format: "%.0f", samplesPerSecondWithoutOverlap)) samples/s without overlap (\(String(format: "%.1f", waitFractionWithoutOverlap * 100))% waiting)
            ms per step on rank 0 with overlap: \(BenchmarkReplica.phaseNames.map { "\($0) \(String(format: "%.3f", phaseMilliseconds[$0] ?? 0))" }.joined(separator: ", "))
            all-reduce of the gradients: bare MPI_Allreduce \(String(format: "%.3f", bareAllreduceMilliseconds)) ms (\(String(format: "%.2f", bareAllreduceGBps)) GB/s), bucketed \(String(format: "%.3f", bucketedAllreduceMilliseconds)) ms
            """
        }
    }

    public func run(world: Communicator) throws -> Result {
        let ranks = world.size
        func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

        var oneRank = 0.0
        if world.isRoot {
            let alone = BenchmarkReplica(model: model, batch: globalBatch, seed: 9)
            for _ in 0..<steps { try alone.step(globalBatch: globalBatch) }
            let start = now()
            for _ in 0..<steps { try alone.step(globalBatch: globalBatch) }
            oneRank = Double(globalBatch * steps) / (now() - start)
        }
        try world.barrier()

        let local = globalBatch * (world.rank + 1) / ranks - globalBatch * world.rank / ranks
        let replica = BenchmarkReplica(model: model, batch: local, seed: UInt64(world.rank) + 10)
        let elements = bucketKib * 1024 / MemoryLayout<Float>.size
        var measured: [(samplesPerSecond: Double, waitFraction: Double)] = []
        var phases: [String: Double] = [:]
        for overlap in [true, false] {
            let reducer = GradientReducer(
                communicator: world, gradients: replica.network.store.gradients,
                bucketElements: elements, overlap: overlap)
            for _ in 0..<steps { try replica.step(globalBatch: globalBatch, reducer: reducer, overlap: overlap) }
            try world.barrier()
            var waited = 0.0
            replica.resetPhases()
            let start = now()
            for _ in 0..<steps {
                waited += try replica.step(globalBatch: globalBatch, reducer: reducer, overlap: overlap)
            }
            if overlap {
                phases = Dictionary(
                    uniqueKeysWithValues: zip(
                        BenchmarkReplica.phaseNames, replica.phaseSeconds.map { $0 * 1000 / Double(steps) }))
            }
            let elapsed = try slowest(now() - start, world)
            measured.append((Double(globalBatch * steps) / elapsed, try world.sum(waited) / Double(ranks) / elapsed))
        }

        let gradients = replica.network.store.gradients
        let bucketed = GradientReducer(
            communicator: world, gradients: gradients, bucketElements: elements, overlap: false)
        for _ in 0..<steps { try world.allReduceSum(gradients) }
        try world.barrier()
        var start = now()
        for _ in 0..<steps { try world.allReduceSum(gradients) }
        let bare = try slowest(now() - start, world) / Double(steps)
        try world.barrier()
        start = now()
        for _ in 0..<steps { _ = try bucketed.finish() }
        let bucketTime = try slowest(now() - start, world) / Double(steps)

        let bytes = gradients.count * MemoryLayout<Float>.size
        return Result(
            ranks: ranks, globalBatch: globalBatch, gradientBytes: bytes, bucketKib: bucketKib,
            oneRankSamplesPerSecond: oneRank, samplesPerSecond: measured[0].samplesPerSecond,
            scalingEfficiency: measured[0].samplesPerSecond / (Double(ranks) * max(oneRank, 1e-9)),
            waitFraction: measured[0].waitFraction,
            samplesPerSecondWithoutOverlap: measured[1].samplesPerSecond,
            waitFractionWithoutOverlap: measured[1].waitFraction,
            bareAllreduceMilliseconds: bare * 1000, bareAllreduceGBps: Double(bytes) / bare / 1e9,
            bucketedAllreduceMilliseconds: bucketTime * 1000, phaseMilliseconds: phases)
    }

    /// The longest of the ranks' times: a step is done when the slowest rank is.
    private func slowest(_ seconds: Double, _ world: Communicator) throws -> Double {
        var value = [Int64(seconds * 1e9)]
        try value.withUnsafeMutableBufferPointer { try world.allReduceMax($0) }
        return Double(value[0]) / 1e9
    }
}
