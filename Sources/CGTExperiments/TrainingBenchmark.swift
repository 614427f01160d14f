import CGTDNNL
import CGTEvaluation
import CGTJob
import CGTKernels
import CGTModel
import CGTTraining
import Foundation

/// Times training steps (SoftCGT unless told otherwise) of the MLP or the CNN, the bare matrix products those steps
/// contain (a convolution counts as the im2col product of the whole batch), and the core's FMA peak.
///
/// The products are the practical limit: everything else in a step (bias, BatchNorm, ReLU,
/// dropout, softmax, gates, Adam) should cost little next to them. The peak says how much of
/// the core the whole step uses.
public struct TrainingBenchmark {
    public let model: BenchmarkModel
    public let batch: Int
    public let steps: Int
    public let method: BenchmarkMethod

    public init(model: BenchmarkModel, batch: Int, steps: Int, method: BenchmarkMethod = .softCGT) {
        self.model = model
        self.batch = batch
        self.steps = steps
        self.method = method
    }

    public struct Result: Codable {
        public var model: String
        public var method: String
        public var cpu: String
        public var kernelTarget: String
        /// oneDNN's version, instruction set and threads.
        public var engine: String
        /// oneDNN's implementation of each convolution pass, e.g. "blocks.0.conv: forward jit:avx512_core, ...".
        public var convolutions: [String]
        public var batch: Int
        public var steps: Int
        public var parameters: Int
        public var matrixFLOPsPerSample: Double
        public var samplesPerSecond: Double
        public var trainingGFLOPs: Double
        public var sgemmGFLOPs: Double
        public var ratioToSgemm: Double
        /// One core's FMA peak (`FMAPeak`), and the training GFLOP/s as a fraction of it.
        public var fmaPeakGFLOPs: Double
        public var peakFraction: Double
        public var millisecondsPerStep: Double
        public var phaseMilliseconds: [String: Double]

        public var report: String {
            let phases = ["forward", "loss_and_gates", "backward", "optimizer"]
                .map { "\($0) \(String(format: "%.3f", phaseMilliseconds[$0] ?? 0))" }.joined(separator: ", ")
            return """
                cpu: \(cpu)
                kernels built for: \(kernelTarget)
                matrix products and convolutions: \(engine)\(convolutions.map { "\n  \($0)" }.joined())
                model: \(model), \(parameters) parameters; batch \(batch); \(steps) timed steps; \(method), Adam
                training: \(String(format: "%.0f", samplesPerSecond)) samples/s, \(String(format: "%.1f", trainingGFLOPs)) GFLOP/s (\(String(format: "%.3f", matrixFLOPsPerSample / 1e6)) MFLOP of matrix products per sample)
                bare dnnl_sgemm, same products: \(String(format: "%.1f", sgemmGFLOPs)) GFLOP/s; ratio \(String(format: "%.2f", ratioToSgemm))
                FMA peak of one core (12 chains, \(FMAPeak.lanes) lanes): \(String(format: "%.1f", fmaPeakGFLOPs)) GFLOP/s; fraction \(String(format: "%.2f", peakFraction))
                ms per step: \(String(format: "%.3f", millisecondsPerStep)) (\(phases))
                """
        }
    }

    /// One matrix product of a training step.
    struct Product {
        var opA: MatrixMultiply.Operand, opB: MatrixMultiply.Operand
        var m: Int, n: Int, k: Int
        var flops: Double { 2 * Double(m) * Double(n) * Double(k) }
    }

    /// The products of one step: forward, weight gradient and (except for the first layer)
    /// input gradient of every Linear and Conv2D, those inside residual blocks included.
    func products(_ network: EarlyExitNetwork) -> [Product] {
        var result: [Product] = []
        for (index, part) in (network.blocks + network.exits).enumerated() {
            for layer in part.leafLayers.map(\.layer) {
                if let conv = layer as? Conv2D {
                    let g = conv.geometry
                    let (rows, columns) = (g.channels * g.kernelHeight * g.kernelWidth, batch * g.height * g.width)
                    result.append(Product(opA: .plain, opB: .plain, m: conv.outputChannels, n: columns, k: rows))
                    result.append(Product(opA: .plain, opB: .transposed, m: conv.outputChannels, n: rows, k: columns))
                    if conv.computesInputGradient {
                        result.append(
                            Product(opA: .transposed, opB: .plain, m: rows, n: columns, k: conv.outputChannels))
                    }
                    continue
                }
                guard let linear = layer as? Linear else { continue }
                let (i, o) = (linear.inputFeatures, linear.outputFeatures)
                result.append(Product(opA: .plain, opB: .transposed, m: batch, n: o, k: i))
                result.append(Product(opA: .transposed, opB: .plain, m: o, n: i, k: batch))
                if index != 0 { result.append(Product(opA: .plain, opB: .plain, m: batch, n: i, k: o)) }
            }
        }
        return result
    }

    public func run() throws -> Result {
        let replica = BenchmarkReplica(model: model, batch: batch, seed: 2, method: method)
        let network = replica.network
        for _ in 0..<steps { try replica.step(globalBatch: batch) }
        replica.resetPhases()
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<steps { try replica.step(globalBatch: batch) }
        let trainingSeconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9

        let plan: [Product] = products(network)
        let flopsPerStep = plan.reduce(0) { $0 + $1.flops }
        let largest = plan.map { max($0.m * $0.k, $0.k * $0.n, $0.m * $0.n) }.max() ?? 0
        let a = [Float](repeating: 0.01, count: largest)
        let b = a
        var c = a
        func runProducts() {
            a.withUnsafeBufferPointer { ab in
                b.withUnsafeBufferPointer { bb in
                    c.withUnsafeMutableBufferPointer { cb in
                        for p in plan {
                            MatrixMultiply.gemm(
                                p.opA, p.opB, m: p.m, n: p.n, k: p.k, a: ab.baseAddress!, b: bb.baseAddress!,
                                c: cb.baseAddress!)
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
        let peak = FMAPeak.measure()
        let convolutions = (network.blocks + network.exits).flatMap { part in
            part.leafLayers.compactMap { path, layer -> String? in
                guard let conv = layer as? Conv2D else { return nil }
                let passes = conv.implementations(batch: batch)
                return
                    "\(path): forward \(passes.forward), backward weights \(passes.backwardWeights), \(passes.backwardData.map { "backward data \($0)" } ?? "no backward data (the network's input)")"
            }
        }
        let perStep: [Double] = replica.phaseSeconds.map { $0 * 1000 / Double(steps) }
        return Result(
            model: model.name, method: method.rawValue, cpu: Self.cpuName(), kernelTarget: KernelTarget.summary,
            engine: DNNLRuntime.summary, convolutions: convolutions,
            batch: batch, steps: steps, parameters: network.store.parameterCount,
            matrixFLOPsPerSample: flopsPerStep / Double(batch),
            samplesPerSecond: Double(batch * steps) / trainingSeconds,
            trainingGFLOPs: training, sgemmGFLOPs: sgemm, ratioToSgemm: training / sgemm,
            fmaPeakGFLOPs: peak, peakFraction: training / peak,
            millisecondsPerStep: trainingSeconds * 1000 / Double(steps),
            phaseMilliseconds: Dictionary(
                uniqueKeysWithValues: zip(BenchmarkReplica.phaseNames, perStep).filter { $0.0 != "allreduce_wait" }))
    }

    /// "AMD EPYC, family 25 model 1, AVX2 (2 cores)": the name alone does not tell a Zen 3 from
    /// a Zen 4 in a VM, the family, model and widest vector unit do.
    public static func cpuName() -> String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown" }
        let lines = text.split(separator: "\n")
        func field(_ name: String) -> String? {
            lines.first { $0.hasPrefix(name) }?.split(separator: ":", maxSplits: 1).last
                .map { $0.trimmingCharacters(in: .whitespaces) }
        }
        let flags = Set((field("flags") ?? "").split(separator: " "))
        let vectors = flags.contains("avx512f") ? "AVX-512" : flags.contains("avx2") ? "AVX2" : "no AVX2"
        let cores = ProcessInfo.processInfo.activeProcessorCount
        return
            "\(field("model name") ?? "unknown"), family \(field("cpu family") ?? "?") model \(field("model") ?? "?"), \(vectors) (\(cores) cores)"
    }
}
