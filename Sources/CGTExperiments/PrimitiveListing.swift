import CGTDNNL
import CGTKernels
import CGTModel

/// Every oneDNN primitive a built-in model runs on this CPU, with oneDNN's implementation of
/// each and the map layouts `MapLayoutChoice` picked: how a slow path is seen without timing
/// anything (`cgt bench --primitives`, and the tests at each `ONEDNN_MAX_CPU_ISA` level).
public struct PrimitiveListing: Codable {
    public var model: String
    public var cpu: String
    /// The instruction set oneDNN dispatches to ("avx2", "avx512_core").
    public var instructionSet: String
    public var vectorBits: Int
    /// What cgt's own kernels were compiled for.
    public var kernelTarget: String
    /// The layout of each map-writing layer's output ("blocks.1.conv": "blocked8").
    public var layouts: [String: String]
    public var batch: Int
    /// At the training batch: forward and both backward passes, with their reorders.
    public var training: [PrimitiveImplementation]
    /// At batch 1, the smallest piece an early-exit inference pass runs (every pass is made, a superset of what inference runs).
    public var inference: [PrimitiveImplementation]

    /// The primitives oneDNN runs on its reference code: empty on every CPU cgt supports.
    public var reference: [PrimitiveImplementation] { (training + inference).filter(\.isReference) }

    public init(model: BenchmarkModel, batch: Int) {
        let network = model.build()
        network.reserve(maxBatch: batch)
        self.model = model.name
        cpu = TrainingBenchmark.cpuName()
        instructionSet = DNNLRuntime.instructionSet
        vectorBits = DNNLRuntime.vectorBits
        kernelTarget = KernelTarget.summary
        self.batch = batch
        var layouts: [String: String] = [:]
        for part in network.blocks + network.exits {
            for (path, layer) in part.leafLayers {
                if let conv = layer as? Conv2D { layouts[path] = "\(conv.outputLayout)" }
            }
        }
        self.layouts = layouts
        training = network.primitiveImplementations(batch: batch)
        inference = network.primitiveImplementations(batch: 1)
    }

    public var report: String {
        var lines = [
            "cpu: \(cpu)", "kernels built for: \(kernelTarget)",
            "oneDNN \(DNNLRuntime.version), \(instructionSet) (\(vectorBits)-bit float32 kernels)",
            "map layouts: "
                + layouts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "),
            "oneDNN primitives of a training step at batch \(batch):",
        ]
        func describe(_ list: [PrimitiveImplementation]) {
            for p in list {
                lines.append(
                    "  \(p.layer) \(p.pass): \(p.implementation)\(p.isReference ? "   <- REFERENCE CODE" : "")")
            }
        }
        describe(training)
        lines.append("at batch 1 (the smallest piece early-exit inference runs; every pass made, as in training):")
        describe(inference)
        let slow = reference
        lines.append(
            slow.isEmpty
                ? "reference implementations: none"
                : "reference implementations: \(slow.count) (\(PrimitiveImplementation.referenceWarning(slow) ?? ""))")
        return lines.joined(separator: "\n")
    }
}
