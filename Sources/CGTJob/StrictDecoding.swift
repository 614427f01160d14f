/// A section of a job file (or the job itself): defaults from `init()`, keys from `fields`.
///
/// Decoding starts from the defaults and sets only the keys present, and first rejects every
/// key `fields` does not list, so that a misspelt option is an error instead of a silently
/// ignored line. Encoding writes every field in `fields` order (optional ones when set).
public protocol JobSection: Codable {
    init()
    static var fields: [JobField<Self>] { get }
}

extension JobSection {
    public init(from decoder: Decoder) throws {
        let container = try decoder.strictContainer(known: Self.fields.map(\.key))
        self.init()
        for field in Self.fields { try field.decode(&self, container) }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: AnyKey.self)
        for field in Self.fields { try field.encode(self, &container) }
    }
}

/// One key of a job section: its name in the file and the property it sets.
public struct JobField<Section>: @unchecked Sendable {
    let key: String
    let decode: (inout Section, KeyedDecodingContainer<AnyKey>) throws -> Void
    let encode: (Section, inout KeyedEncodingContainer<AnyKey>) throws -> Void

    /// A key whose absence keeps the default.
    init<Value: Codable>(_ key: String, _ property: WritableKeyPath<Section, Value>) {
        self.init(key, decoding: Value.self, into: { $0[keyPath: property] = $1 }) { section, container, codingKey in
            try Self.encode(section[keyPath: property], into: &container, as: codingKey)
        }
    }

    /// An optional key: absent means nil, and nil is not written.
    init<Value: Codable>(_ key: String, _ property: WritableKeyPath<Section, Value?>) {
        self.init(key, decoding: Value.self, into: { $0[keyPath: property] = $1 }) { section, container, codingKey in
            guard let value = section[keyPath: property] else { return }
            try Self.encode(value, into: &container, as: codingKey)
        }
    }

    /// Writes `value`; a float as the shortest decimal that reads back to it ("0.2", not the
    /// double 0.200000002980232), so job.yaml shows what the user wrote.
    private static func encode<Value: Encodable>(
        _ value: Value, into container: inout KeyedEncodingContainer<AnyKey>, as key: AnyKey
    ) throws {
        func decimal(_ number: Float) -> Double { Double("\(number)") ?? Double(number) }
        switch value {
        case let number as Float: try container.encode(decimal(number), forKey: key)
        case let numbers as [Float]: try container.encode(numbers.map(decimal), forKey: key)
        case let rows as [[Float]]: try container.encode(rows.map { $0.map(decimal) }, forKey: key)
        default: try container.encode(value, forKey: key)
        }
    }

    private init<Value: Decodable>(
        _ key: String, decoding: Value.Type, into set: @escaping (inout Section, Value) -> Void,
        encode: @escaping (Section, inout KeyedEncodingContainer<AnyKey>, AnyKey) throws -> Void
    ) {
        self.key = key
        let codingKey = AnyKey(stringValue: key)
        decode = { section, container in
            if let value = try container.decodeIfPresent(Value.self, forKey: codingKey) { set(&section, value) }
        }
        self.encode = { section, container in try encode(section, &container, codingKey) }
    }
}

/// A coding key for whatever keys a mapping holds.
public struct AnyKey: CodingKey {
    public var stringValue: String
    public var intValue: Int? { nil }
    public init(stringValue: String) { self.stringValue = stringValue }
    public init?(intValue: Int) { nil }
}

/// Raised for a key that no section of the job declares.
struct UnknownKeyError: Error {
    let path: [String]
    let suggestion: String?
}

/// Raised for a value a section cannot hold: a name outside a closed set (`JobChoice`), or an
/// option the chosen method does not take (`MethodSection`).
struct InvalidValueError: Error {
    let path: [String]
    let problem: String
}

extension Decoder {
    /// The keyed container, after rejecting every key not in `known`.
    func strictContainer(known: [String]) throws -> KeyedDecodingContainer<AnyKey> {
        let container = try self.container(keyedBy: AnyKey.self)
        for key in container.allKeys where !known.contains(key.stringValue) {
            throw UnknownKeyError(
                path: codingPath.map(\.stringValue) + [key.stringValue], suggestion: nearest(key.stringValue, in: known)
            )
        }
        return container
    }
}
