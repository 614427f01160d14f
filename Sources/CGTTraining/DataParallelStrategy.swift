import CGTEvaluation
import CGTJob
import CGTKernels
import CGTMPI
import CGTModel
import Foundation

/// How the ranks of a data-parallel run work together: gradients summed in fixed buckets,
/// counts summed, rank 0's state broadcast, BatchNorm statistics synchronised, failures agreed
/// on, and long waits reported. An evaluation's ranks too (`EvaluationRanks`): training's own
/// and `cgt eval`'s, which has no gradients to sum.
///
/// The one-rank form (no communicator, or a world of one) does nothing and never calls MPI, so
/// the training loop reads the same for any number of ranks and never asks how many there are.
final class DataParallelStrategy {
    let rank: Int
    let ranks: Int
    /// The communicator when there are other ranks to work with.
    let communicator: Communicator?
    private let reducer: GradientReducer?
    private let stallWatch: StallWatch?
    /// Handed to the backward pass: starts a bucket's all-reduce as soon as its gradients are
    /// final (`runtime.overlap_allreduce`); nil when there is nothing to overlap.
    let gradientsReady: ((Int) -> Void)?

    /// - Parameter gradients: the buffer the backward pass fills, summed by `reduceGradients`
    ///   (nil: the ranks evaluate and never train).
    init(communicator: Communicator?, gradients: UnsafeMutableBufferPointer<Float>?, runtime: RuntimeSection) {
        rank = communicator?.rank ?? 0
        ranks = communicator?.size ?? 1
        guard let communicator, communicator.hasOtherRanks else {
            self.communicator = nil
            reducer = nil
            stallWatch = nil
            gradientsReady = nil
            return
        }
        self.communicator = communicator
        stallWatch = StallWatch(rank: communicator.rank, runtime: runtime)
        guard let gradients else {
            reducer = nil
            gradientsReady = nil
            return
        }
        let reducer = GradientReducer(
            communicator: communicator, gradients: gradients,
            bucketElements: runtime.bucketKib * 1024 / MemoryLayout<Float>.size, overlap: runtime.overlapAllreduce)
        self.reducer = reducer
        gradientsReady = runtime.overlapAllreduce ? { reducer.gradientsReady(from: $0) } : nil
    }

    deinit { stallWatch?.stop() }

    var isRoot: Bool { rank == 0 }

    /// Whether other ranks take part (`Communicator.hasOtherRanks`); without them every
    /// method here returns at once.
    var hasOtherRanks: Bool { communicator != nil }

    /// Runs `body` on every rank; a failure anywhere stops all ranks together.
    /// `place` names the wait in the stall watch's messages.
    func together<R>(watchedAs place: StaticString = "the agreement between ranks", _ body: () throws -> R) throws
        -> R
    {
        guard let communicator else { return try body() }
        let result: Result<R, Error>
        do { result = .success(try body()) } catch { result = .failure(error) }
        return try watched(place) {
            try communicator.collectively { try result.get() }
        }
    }

    /// Sums the gradient buffer over the ranks (what the backward pass did not start already).
    func reduceGradients() throws {
        guard let reducer else { return }
        _ = try watched("the gradient all-reduce") { try reducer.finish() }
    }

    /// Sums `values` over the ranks, in place.
    func sum(_ values: inout [Double]) throws {
        guard let communicator else { return }
        try watched("the epoch's statistics") {
            try values.withUnsafeMutableBufferPointer { try communicator.allReduceSum($0) }
        }
    }

    /// The stop signal any rank has received (`StopRequest`), agreed by every rank after a
    /// step: one all-reduce of one integer, so all ranks stop at the same step.
    func agreedStopSignal(listening: Bool) throws -> Int32? {
        // Every rank reads the same job, so with no stop signals every rank skips this alike.
        guard listening else { return nil }
        var signal = Int64(StopRequest.received ?? 0)
        if let communicator {
            try watched("the stop agreement") {
                try withUnsafeMutablePointer(to: &signal) {
                    try communicator.allReduceMax(UnsafeMutableBufferPointer(start: $0, count: 1))
                }
            }
        }
        return signal == 0 ? nil : Int32(signal)
    }

    /// Sends rank 0's `buffer` to every rank.
    func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        try communicator?.broadcast(buffer)
    }

    /// Sends rank 0's `values` to every rank.
    func broadcast<T: BitwiseCopyable>(_ values: inout [T]) throws {
        guard let communicator else { return }
        try values.withUnsafeMutableBytes { try communicator.broadcast($0) }
    }

    /// Every rank's `values`, whatever their lengths, in rank order, on every rank (one
    /// broadcast per rank: for checkpoints, not for the training loop).
    func gather<T: BitwiseCopyable>(_ values: [T]) throws -> [[T]] {
        guard let communicator else { return [values] }
        let bytes = values.withUnsafeBytes { Array($0) }
        return try watched("a checkpoint's gather") { try communicator.allGather(bytes: bytes) }.map {
            Self.values($0, as: T.self)
        }
    }

    /// Rank 0's `values`, whatever their length, on every rank.
    func broadcastAnyLength<T: BitwiseCopyable>(_ values: [T]) throws -> [T] {
        guard let communicator else { return values }
        let bytes = values.withUnsafeBytes { Array($0) }
        return Self.values(try watched("rank 0's state") { try communicator.broadcast(bytes: bytes) }, as: T.self)
    }

    /// `bytes` as values of `T` (copied: a byte array need not be aligned for `T`).
    private static func values<T: BitwiseCopyable>(_ bytes: [UInt8], as type: T.Type) -> [T] {
        let count = bytes.count / MemoryLayout<T>.stride
        return [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            bytes.withUnsafeBytes { UnsafeMutableRawBufferPointer(buffer).copyMemory(from: $0) }
            initialized = count
        }
    }

    /// Where the loop is (1-based step and epoch), for the stall watch's messages.
    var position = (step: 0, epoch: 0)

    /// Makes BatchNorm statistics those of the global batch (summed over ranks, watched for
    /// stalls like every other collective), or local.
    func synchronizeBatchNorm(of network: EarlyExitNetwork, _ synchronized: Bool) {
        network.setBatchNormReducer(synchronized ? batchNormReducer(watchedAs: "the BatchNorm statistics") : nil)
    }

    /// Sums a BatchNorm layer's batch statistics over the ranks at `place` (nil with one rank).
    private func batchNormReducer(watchedAs place: StaticString) -> BatchNormKernels.StatisticsReducer? {
        guard let communicator else { return nil }
        // The strategy is held weakly (a network may outlive its trainer, and then the stall
        // watch with it); without it the sum still runs, unwatched.
        return { [weak self] buffer in
            // A failed reduction cannot be reported through the kernel; stop the job.
            do {
                if let self {
                    try self.watched(place) { try communicator.allReduceSum(buffer) }
                } else {
                    try communicator.allReduceSum(buffer)
                }
            } catch {
                communicator.abort(code: 1)
            }
        }
    }

    private func watched<R>(_ place: StaticString, _ body: () throws -> R) throws -> R {
        guard let stallWatch else { return try body() }
        return try stallWatch.watching(place, step: position.step, epoch: position.epoch, body)
    }
}

extension DataParallelStrategy: EvaluationRanks {
    func agree<R>(_ body: () throws -> R) throws -> R {
        try together(watchedAs: "the evaluation's agreement on its reads", body)
    }

    func sumCounts(_ values: inout [Int64]) throws {
        guard let communicator else { return }
        try watched("the evaluation's sum") {
            try values.withUnsafeMutableBufferPointer { try communicator.allReduceSum($0) }
        }
    }

    func gather(bytes: [UInt8]) throws -> [[UInt8]] {
        guard let communicator else { return [bytes] }
        return try watched("the evaluation's gather") { try communicator.allGather(bytes: bytes) }
    }

    var batchNormReducer: BatchNormKernels.StatisticsReducer? {
        batchNormReducer(watchedAs: "the BatchNorm re-estimation")
    }
}
