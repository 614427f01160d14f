import CDNNL

/// A primitive descriptor: oneDNN's chosen implementation of one operation for given shapes
/// and layouts, queried for the layouts it wants before the primitive is made.
public final class DNNLPrimitiveDescriptor {
    public let handle: dnnl_primitive_desc_t
    /// What the descriptor was made for, for error messages and benchmark output.
    public let request: String

    /// Creates the descriptor of an operation described by `operation` (a `dnnl_*_desc_t`),
    /// with `hint` the forward descriptor that backward operations must name.
    public init<Operation>(
        _ operation: inout Operation, hint: DNNLPrimitiveDescriptor? = nil,
        request: String, engine: DNNLEngine = .cpu
    ) throws {
        var pd: dnnl_primitive_desc_t?
        let status = withUnsafeBytes(of: &operation) { description in
            dnnl_primitive_desc_create(&pd, description.baseAddress, nil, engine.engine, hint?.handle)
        }
        try check(status, "dnnl_primitive_desc_create", request)
        handle = pd!
        self.request = request
    }

    /// A reorder from `source`'s layout to `destination`'s.
    public init(
        reorderFrom source: DNNLTensorDescriptor, to destination: DNNLTensorDescriptor,
        request: String, engine: DNNLEngine = .cpu
    ) throws {
        var pd: dnnl_primitive_desc_t?
        var from = source.raw
        var to = destination.raw
        try check(
            dnnl_reorder_primitive_desc_create(&pd, &from, engine.engine, &to, engine.engine, nil),
            "dnnl_reorder_primitive_desc_create", request)
        handle = pd!
        self.request = request
    }

    /// The layout the implementation wants for one of its tensors (`dnnl_query_src_md`, ...).
    public func descriptor(_ query: dnnl_query_t, index: Int32 = 0) -> DNNLTensorDescriptor {
        DNNLTensorDescriptor(raw: dnnl_primitive_desc_query_md(handle, query, index).pointee)
    }

    /// oneDNN's name of the implementation it chose, e.g. "jit:avx512_core" or "gemm:jit".
    public var implementation: String {
        var name: UnsafePointer<CChar>?
        guard dnnl_primitive_desc_query(handle, dnnl_query_impl_info_str, 0, &name) == dnnl_success, let name else {
            return "unknown"
        }
        return String(cString: name)
    }

    deinit { dnnl_primitive_desc_destroy(handle) }
}

/// A primitive bound to the memories it runs on, ready to run again and again.
///
/// The memories are fixed when the primitive is made; what changes between runs is the data
/// they view (`DNNLMemory.point(at:)`), so a run allocates nothing.
public final class DNNLPrimitive {
    public let handle: dnnl_primitive_t
    public let descriptor: DNNLPrimitiveDescriptor
    private let memories: [DNNLMemory]
    private let arguments: [dnnl_exec_arg_t]

    /// - Parameter arguments: `DNNL_ARG_*` names and the memories behind them.
    public init(_ descriptor: DNNLPrimitiveDescriptor, arguments: [(Int32, DNNLMemory)]) throws {
        var primitive: dnnl_primitive_t?
        try check(dnnl_primitive_create(&primitive, descriptor.handle), "dnnl_primitive_create", descriptor.request)
        handle = primitive!
        self.descriptor = descriptor
        memories = arguments.map(\.1)
        self.arguments = arguments.map { dnnl_exec_arg_t(arg: $0.0, memory: $0.1.handle) }
    }

    /// Runs the primitive and returns when it is done.
    @inline(__always)
    public func run(engine: DNNLEngine = .cpu) {
        arguments.withUnsafeBufferPointer { args in
            require(
                dnnl_primitive_execute(handle, engine.stream, Int32(args.count), args.baseAddress),
                "dnnl_primitive_execute", descriptor.request)
        }
        require(dnnl_stream_wait(engine.stream), "dnnl_stream_wait", descriptor.request)
    }

    deinit { dnnl_primitive_destroy(handle) }
}

extension DNNLRuntime {
    /// Whether an implementation name is one of oneDNN's reference implementations.
    public static func isReference(_ implementation: String) -> Bool {
        implementation.split(whereSeparator: { $0 == ":" || $0 == "_" }).contains("ref")
    }
}
