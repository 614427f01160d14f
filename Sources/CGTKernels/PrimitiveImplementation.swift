import CGTDNNL

/// One oneDNN primitive a layer runs and the implementation oneDNN chose for it.
public struct PrimitiveImplementation: Sendable, Equatable, Codable {
    /// The key path of the layer that runs it ("blocks.1.conv"); empty until a network names it.
    public var layer: String
    /// Which pass or reorder: "forward", "backward weights", "reorder of the input (forward)".
    public var pass: String
    /// oneDNN's name of the implementation, e.g. "jit:avx2" or "ref:any".
    public var implementation: String
    /// Whether inference runs it too (a forward pass and its reorders), not training alone.
    public var runsInInference: Bool

    public init(layer: String = "", pass: String, implementation: String, runsInInference: Bool = false) {
        self.layer = layer
        self.runsInInference = runsInInference
        self.pass = pass
        self.implementation = implementation
    }

    /// Whether oneDNN fell back to its reference code: plain C++ loops, tens to hundreds of
    /// times slower than a JIT kernel, chosen silently when no JIT kernel takes the layout on
    /// this CPU ("ref:any", "bnorm_ref:any", "ref_fused_convolution:any", ...).
    public var isReference: Bool { DNNLRuntime.isReference(implementation) }

    /// The same primitive, run by the layer at `path`.
    public func run(by path: String) -> PrimitiveImplementation {
        var named = self
        named.layer = path
        return named
    }
}

extension PrimitiveImplementation {
    /// One warning line about the reference implementations among `primitives`, or nil where
    /// there are none: which layer and pass, the instruction set, and what to do.
    public static func referenceWarning(_ primitives: [PrimitiveImplementation]) -> String? {
        let reference = primitives.filter(\.isReference)
        guard let first = reference.first else { return nil }
        let more = reference.count > 1 ? " and \(reference.count - 1) more" : ""
        return
            "oneDNN runs its reference code (tens to hundreds of times slower than its JIT kernels) for \(first.layer) \(first.pass) (\(first.implementation))\(more) at \(DNNLRuntime.instructionSet): no map layout avoids it for these shapes; `cgt bench --primitives` with the same model lists them; channel counts that are multiples of 8 (16 on AVX-512) avoid it"
    }
}
