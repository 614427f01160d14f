import CGTKernels

/// A named tensor inside one of the store's flat buffers.
public struct TensorSlot: Equatable, Sendable {
    /// The key path, as in PyTorch's `state_dict`: "blocks.0.linear.weight".
    public var name: String
    public var shape: [Int]
    public var offset: Int
    public var count: Int { shape.reduce(1, *) }
}

/// Collects the tensors layers declare before any memory exists, so that all of them can be
/// laid out in one buffer.
public struct ParameterLayoutBuilder {
    public private(set) var parameters: [TensorSlot] = []
    public private(set) var buffers: [TensorSlot] = []
    private var parameterCount = 0
    private var bufferCount = 0

    public init() {}

    /// Declares a trainable tensor and returns its offset in the parameter buffer.
    public mutating func parameter(_ name: String, shape: [Int]) -> Int {
        let slot = TensorSlot(name: name, shape: shape, offset: parameterCount)
        parameters.append(slot)
        parameterCount += slot.count
        return slot.offset
    }

    /// Declares a non-trainable tensor (running statistics) and returns its offset.
    public mutating func buffer(_ name: String, shape: [Int]) -> Int {
        let slot = TensorSlot(name: name, shape: shape, offset: bufferCount)
        buffers.append(slot)
        bufferCount += slot.count
        return slot.offset
    }
}

/// All parameters of a network in one contiguous buffer, gradients in a second of the same
/// layout, and running statistics in a third.
///
/// One buffer means an all-reduce, an optimizer step or a checkpoint is a single pass, and a
/// layer's view is a fixed offset that never moves.
public final class ParameterStore {
    public let parameterSlots: [TensorSlot]
    public let bufferSlots: [TensorSlot]
    public let parameters: UnsafeMutableBufferPointer<Float>
    public let gradients: UnsafeMutableBufferPointer<Float>
    public let buffers: UnsafeMutableBufferPointer<Float>

    public init(layout: ParameterLayoutBuilder) {
        parameterSlots = layout.parameters
        bufferSlots = layout.buffers
        let parameterCount = layout.parameters.last.map { $0.offset + $0.count } ?? 0
        let bufferCount = layout.buffers.last.map { $0.offset + $0.count } ?? 0
        parameters = .allocate(capacity: parameterCount)
        gradients = .allocate(capacity: parameterCount)
        buffers = .allocate(capacity: bufferCount)
        parameters.initialize(repeating: 0)
        gradients.initialize(repeating: 0)
        buffers.initialize(repeating: 0)
    }

    deinit {
        parameters.deallocate()
        gradients.deallocate()
        buffers.deallocate()
    }

    public var parameterCount: Int { parameters.count }

    /// The parameter view of a slot.
    public func parameter(_ slot: TensorSlot) -> UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(rebasing: parameters[slot.offset..<(slot.offset + slot.count)])
    }

    public func gradient(_ slot: TensorSlot) -> UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(rebasing: gradients[slot.offset..<(slot.offset + slot.count)])
    }

    public func buffer(_ slot: TensorSlot) -> UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(rebasing: buffers[slot.offset..<(slot.offset + slot.count)])
    }

    /// The first parameter (with `parameters`), then buffer, holding a NaN or an infinity, or
    /// nil: a diverged run.
    ///
    /// One vectorised sum per buffer is all it costs when everything is finite; only a sum
    /// that is not looks at the values.
    public func firstNonFiniteTensor(parameters includingParameters: Bool = true) -> String? {
        if includingParameters, let name = Self.firstNonFinite(UnsafeBufferPointer(parameters), parameterSlots) {
            return name
        }
        return Self.firstNonFinite(UnsafeBufferPointer(buffers), bufferSlots)
    }

    /// The first of `slots` whose values in `values` are not all finite (a sum that overflows
    /// on finite values names nothing: every value is still a number).
    public static func firstNonFinite(_ values: UnsafeBufferPointer<Float>, _ slots: [TensorSlot]) -> String? {
        guard !Reductions.sum(values).isFinite else { return nil }
        return slots.first { slot in
            values[slot.offset..<(slot.offset + slot.count)].contains { !$0.isFinite }
        }?.name
    }

    /// A copy of every parameter and buffer value, for saving and restoring around evaluation.
    public func snapshot() -> (parameters: [Float], buffers: [Float]) {
        (Array(parameters), Array(buffers))
    }

    public func restore(_ snapshot: (parameters: [Float], buffers: [Float])) {
        precondition(
            snapshot.parameters.count == parameters.count && snapshot.buffers.count == buffers.count,
            "snapshot of another network")
        _ = parameters.update(from: snapshot.parameters)
        _ = buffers.update(from: snapshot.buffers)
    }
}

extension UnsafeMutableBufferPointer where Element == Float {
    /// The first `count` elements as a read-only buffer.
    @inlinable
    public func prefix(count: Int) -> UnsafeBufferPointer<Float> {
        precondition(count <= self.count, "view of \(count) elements in a buffer of \(self.count)")
        return UnsafeBufferPointer(start: baseAddress, count: count)
    }

    /// The first `count` elements as a writable buffer.
    @inlinable
    public func mutablePrefix(count: Int) -> UnsafeMutableBufferPointer<Float> {
        precondition(count <= self.count, "view of \(count) elements in a buffer of \(self.count)")
        return UnsafeMutableBufferPointer(start: baseAddress, count: count)
    }
}
