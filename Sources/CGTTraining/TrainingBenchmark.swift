import CGTKernels
import CGTModel
import Foundation

/// Times SoftCGT training steps of an MLP and the bare matrix products those steps contain.
///
/// The products are the practical limit: everything else in a step (bias, BatchNorm, ReLU,
/// dropout, softmax, gates, Adam) should cost little next to them.
struct TrainingBenchmark {
    let architecture: MLPArchitecture
    let batch: Int
    let steps: Int

    struct Result: Codable {
        var cpu: String
        var kernelTarget: String
        var blasThreads: Int
        var batch: Int
        var steps: Int
        var parameters: Int
        var matrixFLOPsPerSample: Double
        var samplesPerSecond: Double
        var trainingGFLOPs: Double
        var sgemmGFLOPs: Double
        var ratioToSgemm: Double
        var millisecondsPerStep: Double
        var phaseMilliseconds: [String: Double]

        var report: String {
            let phases = ["forward", "loss_and_gates", "backward", "optimizer"]
                .map { "\($0) \(String(format: "%.3f", phaseMilliseconds[$0] ?? 0))" }.joined(separator: ", ")
            return """
                cpu: \(cpu)
                kernels built for: \(kernelTarget); OpenBLAS threads: \(blasThreads)
                model: MLP, \(parameters) parameters; batch \(batch); \(steps) timed steps; SoftCGT, Adam
                training: \(String(format: "%.0f", samplesPerSecond)) samples/s, \(String(format: "%.1f", trainingGFLOPs)) GFLOP/s (\(String(format: "%.3f", matrixFLOPsPerSample / 1e6)) MFLOP of matrix products per sample)
                bare cblas_sgemm, same products: \(String(format: "%.1f", sgemmGFLOPs)) GFLOP/s
                ratio to cblas_sgemm: \(String(format: "%.2f", ratioToSgemm))
                ms per step: \(String(format: "%.3f", millisecondsPerStep)) (\(phases))
                """
        }
    }

    /// One `cblas_sgemm` call of a training step.
    struct Product {
        var opA: MatrixMultiply.Operand, opB: MatrixMultiply.Operand
        var m: Int, n: Int, k: Int
        var flops: Double { 2 * Double(m) * Double(n) * Double(k) }
    }

    /// The products of one step: forward, weight gradient and (except for the first layer) input gradient of every Linear.
    func products(_ network: EarlyExitNetwork) -> [Product] {
        var result: [Product] = []
        for (index, part) in (network.blocks + network.exits).enumerated() {
            for layer in part.layers {
                guard let linear = layer as? Linear else { continue }
                let (i, o) = (linear.inputFeatures, linear.outputFeatures)
                result.append(Product(opA: .plain, opB: .transposed, m: batch, n: o, k: i))
                result.append(Product(opA: .transposed, opB: .plain, m: o, n: i, k: batch))
                if index != 0 { result.append(Product(opA: .plain, opB: .plain, m: batch, n: i, k: o)) }
            }
        }
        return result
    }

    func run() -> Result {
        let network = architecture.build()
        network.initialize(seed: 1)
        network.reserve(maxBatch: batch)
        let objective = ExitObjective(exits: network.exitCount, classes: architecture.classes)
        objective.reserve(maxBatch: batch)
        let optimizer = Adam(parameterCount: network.store.parameterCount)
        let weighting = SoftCGT(tau: 0.9)
        var generator = SeededGenerator(seed: 2)
        let x = (0..<(batch * architecture.inputFeatures)).map { _ in generator.normal() }
        let y = (0..<batch).map { _ in Int32(generator.next() % UInt64(architecture.classes)) }
        let ids = (0..<batch).map { Int64($0) }
        var phases = [Double](repeating: 0, count: 4)

        func step(timed: Bool) {
            x.withUnsafeBufferPointer { xb in
                y.withUnsafeBufferPointer { yb in
                    ids.withUnsafeBufferPointer { ib in
                        let t0 = DispatchTime.now().uptimeNanoseconds
                        network.forward(xb, batch: batch, context: ForwardContext(mode: .training, sampleIDs: ib, randomKey: 3))
                        let t1 = DispatchTime.now().uptimeNanoseconds
                        objective.evaluate(network: network, labels: yb, batch: batch, weighting: weighting, globalBatch: batch)
                        let t2 = DispatchTime.now().uptimeNanoseconds
                        network.backward(input: xb, batch: batch)
                        let t3 = DispatchTime.now().uptimeNanoseconds
                        optimizer.step(network.store, learningRate: 1e-4)
                        let t4 = DispatchTime.now().uptimeNanoseconds
                        if timed {
                            phases[0] += Double(t1 - t0); phases[1] += Double(t2 - t1)
                            phases[2] += Double(t3 - t2); phases[3] += Double(t4 - t3)
                        }
                    }
                }
            }
        }
        for _ in 0..<steps { step(timed: false) }
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<steps { step(timed: true) }
        let trainingSeconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9

        let plan: [Product] = products(network)
        let flopsPerStep = plan.reduce(0) { $0 + $1.flops }
        let largest = plan.map { max($0.m * $0.k, $0.k * $0.n, $0.m * $0.n) }.max() ?? 0
        var a = [Float](repeating: 0.01, count: largest), b = a, c = a
        func runProducts() {
            a.withUnsafeBufferPointer { ab in
                b.withUnsafeBufferPointer { bb in
                    c.withUnsafeMutableBufferPointer { cb in
                        for p in plan {
                            MatrixMultiply.gemm(p.opA, p.opB, m: p.m, n: p.n, k: p.k, a: ab.baseAddress!, b: bb.baseAddress!, c: cb.baseAddress!)
                        }
                    }
                }
            }
        }
        for _ in 0..<steps { runProducts() }
        let gemmStart = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<steps { runProducts() }
        let gemmSeconds = Double(DispatchTime.now().uptimeNanoseconds - gemmStart) / 1e9
        _ = (a.count, b.count)

        let training = flopsPerStep * Double(steps) / trainingSeconds / 1e9
        let sgemm = flopsPerStep * Double(steps) / gemmSeconds / 1e9
        let names = ["forward", "loss_and_gates", "backward", "optimizer"]
        let perStep: [Double] = phases.map { (nanoseconds: Double) -> Double in nanoseconds / 1e6 / Double(steps) }
        return Result(
            cpu: Self.cpuName(), kernelTarget: KernelTarget.summary, blasThreads: MatrixMultiply.threadCount,
            batch: batch, steps: steps, parameters: network.store.parameterCount,
            matrixFLOPsPerSample: flopsPerStep / Double(batch),
            samplesPerSecond: Double(batch * steps) / trainingSeconds,
            trainingGFLOPs: training, sgemmGFLOPs: sgemm, ratioToSgemm: training / sgemm,
            millisecondsPerStep: trainingSeconds * 1000 / Double(steps),
            phaseMilliseconds: Dictionary(uniqueKeysWithValues: zip(names, perStep)))
    }

    static func cpuName() -> String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown" }
        let model = text.split(separator: "\n").first { $0.hasPrefix("model name") }?.split(separator: ":").last
        let cores = ProcessInfo.processInfo.activeProcessorCount
        return "\(model.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown") (\(cores) cores)"
    }
}
