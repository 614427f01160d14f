import CGTJob
import CGTMPI
import Foundation

/// Sums the flat gradient buffer over all ranks in fixed buckets, overlapping the backward pass.
///
/// Buckets are cut from the end of the buffer, where the backward pass finishes first (see
/// `EarlyExitNetwork`). Each bucket's `MPI_Iallreduce` starts as soon as the backward pass
/// reports that every gradient from the bucket's start onwards is final. Buckets have fixed
/// boundaries and start in a fixed order on every rank, so the reduction, and its summation
/// order, is the same in every step and every run: results are reproducible (unlike fusion
/// that groups tensors by arrival time).
package final class GradientReducer {
    let communicator: Communicator
    let gradients: UnsafeMutableBufferPointer<Float>
    /// Bucket ranges in the order they are started: from the end of the buffer to its start.
    let buckets: [Range<Int>]
    let overlap: Bool
    private let pending: PendingReductions
    private var nextBucket = 0
    private var failure: Error?

    package init(
        communicator: Communicator, gradients: UnsafeMutableBufferPointer<Float>, bucketElements: Int, overlap: Bool
    ) {
        self.communicator = communicator
        self.gradients = gradients
        self.overlap = overlap
        pending = PendingReductions(communicator: communicator)
        buckets = Self.buckets(count: gradients.count, bucketElements: bucketElements)
    }

    /// Buckets of at most `bucketElements` (at least 1) covering `0..<count`, cut from the end:
    /// the order the backward pass finishes them in. The first bucket of the buffer may be short.
    package static func buckets(count: Int, bucketElements: Int) -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        var end = count
        while end > 0 {
            let start = max(0, end - max(1, bucketElements))
            ranges.append(start..<end)
            end = start
        }
        return ranges
    }

    /// Called by the backward pass: gradients from `offset` to the end are final.
    package func gradientsReady(from offset: Int) {
        guard overlap, failure == nil else { return }
        do {
            while nextBucket < buckets.count && buckets[nextBucket].lowerBound >= offset {
                try pending.startSum(UnsafeMutableBufferPointer(rebasing: gradients[buckets[nextBucket]]))
                nextBucket += 1
            }
            try pending.poll()
        } catch {
            failure = error
        }
    }

    /// Reduces what is left and waits for all buckets; returns the seconds spent in it.
    ///
    /// Without overlap the buckets are reduced with blocking `MPI_Allreduce` in the same fixed
    /// order: Open MPI's blocking collective is the faster one on the paper MLP's gradients
    /// (RESULTS.md, "Kernel and reducer choices"), and where the copies run on the same cores
    /// as the backward pass (shared memory), overlap saves nothing.
    package func finish() throws -> Double {
        defer { nextBucket = 0 }
        if let failure {
            self.failure = nil
            throw failure
        }
        let start = DispatchTime.now().uptimeNanoseconds
        if !overlap {
            for bucket in buckets {
                try communicator.allReduceSum(UnsafeMutableBufferPointer(rebasing: gradients[bucket]))
            }
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        while nextBucket < buckets.count {
            try pending.startSum(UnsafeMutableBufferPointer(rebasing: gradients[buckets[nextBucket]]))
            nextBucket += 1
        }
        return try pending.waitAll()
    }
}
