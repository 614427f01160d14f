import CGTEvaluation
import CGTJob
import CGTKernels
import CGTModel
import CGTRandom
import CGTTraining
import Foundation

/// A network with its objective and optimizer, trained on fixed random data: the unit the
/// benchmarks time. Each step records how long its phases took.
final class BenchmarkReplica {
    let network: EarlyExitNetwork
    let objective: ExitObjective
    let optimizer: Adam
    let method: BenchmarkMethod
    let weighting: ExitWeighting
    let batch: Int
    private let x: [Float], y: [Int32], ids: [Int64]
    /// Seconds spent in forward, loss and gates, backward, all-reduce wait and optimizer, summed over steps.
    private(set) var phaseSeconds = [Double](repeating: 0, count: 5)
    static let phaseNames = ["forward", "loss_and_gates", "backward", "allreduce_wait", "optimizer"]

    init(model: BenchmarkModel, batch: Int, seed: UInt64, method: BenchmarkMethod = .softCGT) {
        self.batch = batch
        self.method = method
        network = model.build()
        network.initialize(seed: 1)
        network.reserve(maxBatch: batch)
        objective = ExitObjective(network: network)
        objective.reserve(maxBatch: batch)
        weighting = method.weighting(exits: network.exitCount)
        method.configure(network: network, objective: objective)
        optimizer = Adam(parameterCount: network.store.parameterCount)
        var generator = SeededGenerator(seed: seed)
        x = (0..<(batch * model.inputCount)).map { _ in generator.normal() }
        y = (0..<batch).map { _ in Int32(generator.next() % UInt64(model.classes)) }
        ids = (0..<batch).map { Int64($0) + Int64(seed) * 1_000_000 }
    }

    func resetPhases() { phaseSeconds = phaseSeconds.map { _ in 0 } }

    /// One training step of the replica's method; with a reducer, gradients are all-reduced (overlapping the
    /// backward pass when `overlap`). Returns the seconds spent waiting for the reduction.
    @discardableResult
    func step(globalBatch: Int, reducer: GradientReducer? = nil, overlap: Bool = false) throws -> Double {
        try x.withUnsafeBufferPointer { xb in
            try y.withUnsafeBufferPointer { yb in
                try ids.withUnsafeBufferPointer { ib in
                    func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
                    let t0 = now()
                    network.forward(
                        xb, batch: batch, context: ForwardContext(mode: .training, sampleIDs: ib, randomKey: 3))
                    let t1 = now()
                    objective.lossAndGradients(
                        network: network, labels: yb, batch: batch, weighting: weighting, globalBatch: globalBatch)
                    let t2 = now()
                    let hook: ((Int) -> Void)? = overlap ? reducer.map { r in { r.gradientsReady(from: $0) } } : nil
                    network.backward(
                        input: xb, batch: batch, gradientEquilibrium: method.gradientEquilibrium, gradientsReady: hook)
                    let t3 = now()
                    let waited = try reducer?.finish() ?? 0
                    let t4 = now()
                    optimizer.step(network.store, learningRate: 1e-4)
                    let t5 = now()
                    for (i, (a, b)) in [(t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5)].enumerated() {
                        phaseSeconds[i] += Double(b - a) / 1e9
                    }
                    return waited
                }
            }
        }
    }
}
