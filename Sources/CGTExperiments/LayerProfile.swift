import CGTJob
import CGTKernels
import CGTModel
import CGTRandom
import CGTTraining
import Foundation

/// Time of each layer's forward and backward pass at a batch size, measured on the layers of
/// a built network with random inputs: where a training step spends its time.
public struct LayerProfile: Codable {
    public struct Entry: Codable {
        public var layer: String
        public var outputShape: [Int]
        /// What computed the passes ("oneDNN bnorm_jit:avx512_core", "cgt SIMD kernels").
        public var implementation: String
        public var forwardMilliseconds: Double
        public var backwardMilliseconds: Double
    }

    public var batch: Int
    public var entries: [Entry]

    /// Runs every layer of every block and head `repeats` times (after one warm-up); as in
    /// training, the network's first layer computes no input gradient.
    public static func measure(_ network: EarlyExitNetwork, batch: Int, repeats: Int) -> LayerProfile {
        var generator = SeededGenerator(seed: 5)
        var entries: [Entry] = []
        network.reserve(maxBatch: batch)
        let ids = (0..<batch).map { Int64($0) }
        ids.withUnsafeBufferPointer { idBuffer in
            let context = ForwardContext(mode: .training, sampleIDs: idBuffer, randomKey: 1)
            for part in network.blocks + network.exits {
                for layer in part.layers {
                    let x = (0..<(batch * layer.inputCount)).map { _ in generator.normal() }
                    var y = [Float](repeating: 0, count: batch * layer.outputCount)
                    let dy = (0..<(batch * layer.outputCount)).map { _ in generator.normal() }
                    var dx = [Float](repeating: 0, count: batch * layer.inputCount)
                    func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
                    var forward = 0.0
                    var backward = 0.0
                    x.withUnsafeBufferPointer { xb in
                        y.withUnsafeMutableBufferPointer { yb in
                            dy.withUnsafeBufferPointer { dyb in
                                dx.withUnsafeMutableBufferPointer { dxBuffer in
                                    let dxb =
                                        part === network.blocks.first && layer === part.layers.first ? nil : dxBuffer
                                    for k in 0...repeats {
                                        let t0 = now()
                                        layer.forward(xb, into: yb, batch: batch, context: context)
                                        let t1 = now()
                                        layer.backward(
                                            input: xb, output: UnsafeBufferPointer(yb), outputGradient: dyb,
                                            inputGradient: dxb, batch: batch)
                                        let t2 = now()
                                        if k > 0 {
                                            forward += Double(t1 - t0)
                                            backward += Double(t2 - t1)
                                        }
                                    }
                                }
                            }
                        }
                    }
                    entries.append(
                        Entry(
                            layer: "\(part.prefix).\(layer.name)", outputShape: layer.outputShape,
                            implementation: layer.implementation(batch: batch),
                            forwardMilliseconds: forward / Double(repeats) / 1e6,
                            backwardMilliseconds: backward / Double(repeats) / 1e6))
                }
            }
        }
        return LayerProfile(batch: batch, entries: entries)
    }

    public var report: String {
        let total = entries.reduce(0) { $0 + $1.forwardMilliseconds + $1.backwardMilliseconds }
        var lines = [
            "per layer at batch \(batch) (ms; forward + backward, share of the total \(String(format: "%.2f", total)) ms):"
        ]
        for e in entries {
            let both = e.forwardMilliseconds + e.backwardMilliseconds
            lines.append(
                String(
                    format: "  %-22@ %-16@ %8.3f + %8.3f  %5.1f %%  %@", e.layer as NSString,
                    "\(e.outputShape)" as NSString,
                    e.forwardMilliseconds, e.backwardMilliseconds, both / total * 100, e.implementation as NSString))
        }
        return lines.joined(separator: "\n")
    }
}
