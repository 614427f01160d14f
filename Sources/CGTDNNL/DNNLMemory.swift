import CDNNL

/// The shape, element type and layout of a tensor as oneDNN describes it.
public struct DNNLTensorDescriptor {
    public var raw: dnnl_memory_desc_t

    /// A float32 tensor of `dims` in the layout `tag` (`dnnl_nchw`, `dnnl_oihw`, `dnnl_x`,
    /// or `dnnl_format_tag_any` to let a primitive choose).
    public init(_ dims: [Int], _ tag: dnnl_format_tag_t) throws {
        var raw = dnnl_memory_desc_t()
        var shape = DNNLDims(dims)
        try check(
            dnnl_memory_desc_init_by_tag(&raw, Int32(dims.count), &shape.raw.0, dnnl_f32, tag),
            "dnnl_memory_desc_init_by_tag", "a float32 tensor \(dims)")
        self.raw = raw
    }

    init(raw: dnnl_memory_desc_t) { self.raw = raw }

    /// Bytes a tensor of this descriptor occupies (blocked layouts pad channels to their block).
    public var byteCount: Int {
        var raw = self.raw
        return dnnl_memory_desc_get_size(&raw)
    }

    /// Whether both describe the same layout of the same shape: then no reorder is needed between them.
    public func sameLayout(as other: DNNLTensorDescriptor) -> Bool {
        var a = raw
        var b = other.raw
        return dnnl_memory_desc_equal(&a, &b) != 0
    }
}

/// A tensor oneDNN can read or write: either over cgt's own buffer (a handle swapped in
/// before each execution) or over memory oneDNN allocated and owns.
public final class DNNLMemory {
    public let handle: dnnl_memory_t
    public let descriptor: DNNLTensorDescriptor

    /// Memory that oneDNN allocates for `descriptor` (an internal, possibly blocked, layout).
    public convenience init(allocating descriptor: DNNLTensorDescriptor, engine: DNNLEngine = .cpu) throws {
        try self.init(
            descriptor, engine: engine, handle: cgt_dnnl_memory_allocate(), request: "\(descriptor.byteCount) bytes")
    }

    /// Memory over buffers cgt owns; `point(at:)` names the buffer before each execution.
    public convenience init(over descriptor: DNNLTensorDescriptor, engine: DNNLEngine = .cpu) throws {
        try self.init(
            descriptor, engine: engine, handle: cgt_dnnl_memory_none(),
            request: "a view of \(descriptor.byteCount) bytes")
    }

    private init(
        _ descriptor: DNNLTensorDescriptor, engine: DNNLEngine, handle data: UnsafeMutableRawPointer?, request: String
    ) throws {
        self.descriptor = descriptor
        var raw = descriptor.raw
        var memory: dnnl_memory_t?
        try check(dnnl_memory_create(&memory, &raw, engine.engine, data), "dnnl_memory_create", request)
        handle = memory!
    }

    /// Makes the memory a view of `pointer` (which must hold `descriptor.byteCount` bytes).
    @inline(__always)
    public func point(at pointer: UnsafeRawPointer) {
        require(
            dnnl_memory_set_data_handle(handle, UnsafeMutableRawPointer(mutating: pointer)),
            "dnnl_memory_set_data_handle", "a view")
    }

    /// The memory's data, for memories oneDNN allocated.
    public var data: UnsafeMutableRawPointer {
        var pointer: UnsafeMutableRawPointer?
        require(dnnl_memory_get_data_handle(handle, &pointer), "dnnl_memory_get_data_handle", "a memory")
        return pointer!
    }

    deinit { dnnl_memory_destroy(handle) }
}

/// oneDNN's fixed-size array of dimensions (`dnnl_dims_t`, 12 entries), filled from a Swift array.
public struct DNNLDims {
    public var raw: dnnl_dims_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)

    public init(_ values: [Int]) {
        precondition(values.count <= Int(DNNL_MAX_NDIMS), "oneDNN takes at most \(DNNL_MAX_NDIMS) dimensions")
        withUnsafeMutableBytes(of: &raw) { bytes in
            let entries = bytes.bindMemory(to: dnnl_dim_t.self)
            for (i, value) in values.enumerated() { entries[i] = dnnl_dim_t(value) }
        }
    }
}
