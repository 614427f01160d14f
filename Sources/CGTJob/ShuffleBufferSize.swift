import CGTFiles

/// How much of its piece of the training split a rank may hold at once
/// (`training.shuffle_buffer`): `auto` (the default), a number of rows, or a size ("256M").
///
/// A rank whose piece fits holds it whole and shuffles it whole; a larger piece streams
/// through a shuffle buffer of this size, so a split larger than memory trains in bounded
/// memory. The batches then depend on the buffer's rows too (`ShuffleBuffer`).
public enum ShuffleBufferSize: Equatable, Sendable, Codable, CustomStringConvertible {
    /// A quarter of the memory limit per rank (`ShardResidency.automatic`).
    case automatic
    case rows(Int)
    case bytes(Int)

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let rows = try? container.decode(Int.self) {
            guard rows >= 1 else { throw Self.invalid(decoder, "\(rows)") }
            self = .rows(rows)
            return
        }
        let text = try container.decode(String.self)
        if text == "auto" {
            self = .automatic
        } else if let bytes = MemoryBudget.parse(text) {
            self = .bytes(bytes)
        } else if let rows = Int(text), rows >= 1 {
            self = .rows(rows)
        } else {
            throw Self.invalid(decoder, "'\(text)'")
        }
    }

    private static func invalid(_ decoder: Decoder, _ value: String) -> InvalidValueError {
        InvalidValueError(
            path: decoder.codingPath.map(\.stringValue),
            problem: "\(value) is no shuffle buffer: give auto, a number of rows (20000) or a size (256M, 2G)")
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .automatic: try container.encode("auto")
        case .rows(let rows): try container.encode(rows)
        case .bytes(let bytes): try container.encode(MemoryBudget.spelled(bytes))
        }
    }

    public var description: String {
        switch self {
        case .automatic: "auto"
        case .rows(let rows): "\(rows) rows"
        case .bytes(let bytes): MemoryBudget.spelled(bytes)
        }
    }
}
