import CGTRandom

/// The order in which a bounded shuffle buffer hands out the samples of a stream, worked out
/// from stream positions alone, so that the samples themselves need to be read only as the
/// buffer takes them in.
///
/// The buffer has `capacity` slots, filled with the stream's first samples. Each step takes
/// its samples from slots drawn uniformly, without replacement, among the filled ones (as
/// tf.data's `shuffle` draws one sample at a time), then puts the next samples of the stream
/// into the slots it emptied; once the stream is used up, the buffer drains. Every sample of
/// the stream is taken exactly once, and what a step takes is a function of the generator's
/// seed, the capacity, the stream's length and the step sizes: replaying the steps before a
/// stop gives the buffer of a resumed run.
///
/// A caller holding the samples keeps one row per slot: a step's slots are read out (the
/// batch) before the refills of that step are written into them.
public struct ShuffleBuffer: Sendable {
    public let capacity: Int
    /// Samples in the stream.
    public let streamCount: Int
    private var generator: SeededGenerator
    /// The slots holding a sample are `held[0..<filled]` (in an order the draws permute).
    private var held: [Int]
    private var filled: Int
    /// The stream position each slot holds.
    public private(set) var content: [Int]
    /// The next stream position to enter the buffer.
    public private(set) var nextPosition: Int

    /// A slot filled from the stream: the caller copies the sample at `position` into `slot`.
    public struct Refill: Equatable, Sendable {
        public var slot: Int
        public var position: Int
    }

    public init(capacity: Int, streamCount: Int, generator: SeededGenerator) {
        precondition(capacity >= 1 && streamCount >= 0)
        self.capacity = capacity
        self.streamCount = streamCount
        self.generator = generator
        let first = min(capacity, streamCount)
        held = Array(0..<first)
        filled = first
        content = Array(0..<first)
        nextPosition = first
    }

    /// Samples in the buffer now.
    public var count: Int { filled }

    /// The fill before the first step: slot i takes stream position i.
    public var initialFill: [Refill] { (0..<min(capacity, streamCount)).map { Refill(slot: $0, position: $0) } }

    /// Takes `count` samples: their slots into `slots`, in the order drawn, and the slots that
    /// take the stream's next samples in their place into `refills` (both emptied first).
    /// - Complexity: O(`count`).
    public mutating func take(_ count: Int, slots: inout [Int], refills: inout [Refill]) {
        precondition(count <= filled, "a step of \(count) samples from a buffer holding \(filled)")
        slots.removeAll(keepingCapacity: true)
        refills.removeAll(keepingCapacity: true)
        for i in 0..<count {
            let j = i + Int(generator.next(upperBound: UInt64(filled - i)))
            held.swapAt(i, j)
            slots.append(held[i])
        }
        var refilled = 0
        while refilled < count && nextPosition < streamCount {
            let slot = held[refilled]
            content[slot] = nextPosition
            refills.append(Refill(slot: slot, position: nextPosition))
            nextPosition += 1
            refilled += 1
        }
        // The stream is used up: the slots not refilled leave the filled part, replaced by the
        // last filled ones.
        let emptied = count - refilled
        let moved = min(emptied, filled - count)
        for t in 0..<moved { held.swapAt(refilled + t, filled - 1 - t) }
        filled -= emptied
    }

    /// The stream positions the buffer holds.
    public var heldPositions: [Int] { held[0..<filled].map { content[$0] } }

    /// The slots holding a sample, with their stream positions: what a resumed run reads back.
    public var heldRefills: [Refill] { held[0..<filled].map { Refill(slot: $0, position: content[$0]) } }
}
