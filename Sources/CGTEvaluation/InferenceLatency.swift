import CGTData
import Foundation

/// Measured inference time with and without early exits, next to the FLOP-based expectation.
public struct InferenceLatency: Codable, Equatable, Sendable {
    /// Per-sample latency at batch 1, in microseconds.
    public struct Percentiles: Codable, Equatable, Sendable {
        public var mean: Double
        public var median: Double
        public var p95: Double
        public var p99: Double
    }

    public var samples: Int
    public var earlyExit: Percentiles
    public var fullNetwork: Percentiles
    /// Mean full-network latency over mean early-exit latency at batch 1.
    public var measuredSpeedup: Double
    /// 1 / relative cost: the speed-up FLOP counts predict.
    public var flopSpeedup: Double
    /// Samples per second in batches of `batch` (leaving samples dropped after each exit) and
    /// for the full network.
    public var batch: Int
    public var batchedEarlyExitSamplesPerSecond: Double
    public var batchedFullNetworkSamplesPerSecond: Double

    enum CodingKeys: String, CodingKey {
        case samples
        case earlyExit = "early_exit_us"
        case fullNetwork = "full_network_us"
        case measuredSpeedup = "measured_speedup"
        case flopSpeedup = "flop_speedup"
        case batch
        case batchedEarlyExitSamplesPerSecond = "batched_early_exit_samples_per_second"
        case batchedFullNetworkSamplesPerSecond = "batched_full_network_samples_per_second"
    }

    /// Times `samples` samples of `split` one at a time (after a warm-up pass), both ways, and
    /// the whole selection in batches of `batch`.
    public static func measure(
        _ inference: EarlyExitInference, split: DatasetSplit, samples: Int, batch: Int, relativeCost: Double
    ) -> InferenceLatency {
        let n = min(samples, split.count)
        let features = split.featureCount
        var x = [Float](repeating: 0, count: n * features)
        var y = [Int32](repeating: 0, count: n)
        var ids = [Int64](repeating: 0, count: n)
        x.withUnsafeMutableBufferPointer { xb in
            y.withUnsafeMutableBufferPointer { yb in
                ids.withUnsafeMutableBufferPointer { ib in
                    split.gather(Array(0..<n)[...], features: xb, labels: yb, sampleIDs: ib)
                }
            }
        }
        var exits = [Int32](repeating: 0, count: max(n, batch))
        var predictions = exits
        func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
        func timeOneByOne(full: Bool) -> [Double] {
            x.withUnsafeBufferPointer { xb in
                exits.withUnsafeMutableBufferPointer { eb in
                    predictions.withUnsafeMutableBufferPointer { pb in
                        (0..<n).map { i -> Double in
                            let start = now()
                            inference.run(
                                UnsafeBufferPointer(rebasing: xb[(i * features)..<((i + 1) * features)]), batch: 1,
                                exits: eb, predictions: pb, fullNetwork: full)
                            return Double(now() - start) / 1e3
                        }
                    }
                }
            }
        }
        func timeBatched(full: Bool) -> Double {
            let start = now()
            x.withUnsafeBufferPointer { xb in
                exits.withUnsafeMutableBufferPointer { eb in
                    predictions.withUnsafeMutableBufferPointer { pb in
                        var first = 0
                        while first < n {
                            let count = min(batch, n - first)
                            inference.run(
                                UnsafeBufferPointer(rebasing: xb[(first * features)..<((first + count) * features)]),
                                batch: count,
                                exits: eb, predictions: pb, fullNetwork: full)
                            first += count
                        }
                    }
                }
            }
            return Double(n) / (Double(now() - start) / 1e9)
        }
        _ = timeOneByOne(full: false)
        _ = timeOneByOne(full: true)
        // Alternate the two ways so that frequency changes and noise hit both alike.
        var early: [Double] = []
        var full: [Double] = []
        for _ in 0..<2 {
            early += timeOneByOne(full: false)
            full += timeOneByOne(full: true)
        }
        func percentiles(_ values: [Double]) -> Percentiles {
            let sorted = values.sorted()
            func at(_ q: Double) -> Double {
                sorted[min(sorted.count - 1, Int((q * Double(sorted.count - 1)).rounded()))]
            }
            return Percentiles(
                mean: values.reduce(0, +) / Double(max(1, values.count)), median: at(0.5), p95: at(0.95), p99: at(0.99))
        }
        let e = percentiles(early)
        let f = percentiles(full)
        _ = timeBatched(full: false)
        let batchedEarly = timeBatched(full: false)
        let batchedFull = timeBatched(full: true)
        return InferenceLatency(
            samples: n, earlyExit: e, fullNetwork: f, measuredSpeedup: f.mean / e.mean,
            flopSpeedup: relativeCost > 0 ? 1 / relativeCost : 0, batch: batch,
            batchedEarlyExitSamplesPerSecond: batchedEarly, batchedFullNetworkSamplesPerSecond: batchedFull)
    }

    public var report: String {
        String(
            format: """
                inference latency at batch 1 over %d samples (microseconds, mean / median / p95 / p99):
                  early exit   %.1f / %.1f / %.1f / %.1f
                  full network %.1f / %.1f / %.1f / %.1f
                  measured speed-up %.2fx, FLOP-based %.2fx
                batches of %d: early exit %.0f samples/s, full network %.0f samples/s (%.2fx)
                """, samples, earlyExit.mean, earlyExit.median, earlyExit.p95, earlyExit.p99,
            fullNetwork.mean, fullNetwork.median, fullNetwork.p95, fullNetwork.p99, measuredSpeedup, flopSpeedup,
            batch, batchedEarlyExitSamplesPerSecond, batchedFullNetworkSamplesPerSecond,
            batchedEarlyExitSamplesPerSecond / max(1, batchedFullNetworkSamplesPerSecond))
    }
}
