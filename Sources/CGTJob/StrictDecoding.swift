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
            try container.encode(section[keyPath: property], forKey: codingKey)
        }
    }

    /// An optional key: absent means nil, and nil is not written.
    init<Value: Codable>(_ key: String, _ property: WritableKeyPath<Section, Value?>) {
        self.init(key, decoding: Value.self, into: { $0[keyPath: property] = $1 }) { section, container, codingKey in
            try container.encodeIfPresent(section[keyPath: property], forKey: codingKey)
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

/// Raised for a name outside a closed set (`JobChoice`).
struct UnknownValueError: Error {
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
