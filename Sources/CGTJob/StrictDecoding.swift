/// A coding key for whatever keys a mapping holds.
struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
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
    /// A keyed container that first rejects every key `Keys` does not list, so that a
    /// misspelt option is an error instead of a silently ignored line.
    func strictContainer<Keys: CodingKey & CaseIterable>(keyedBy keys: Keys.Type) throws -> KeyedDecodingContainer<Keys> {
        let known = Keys.allCases.map(\.stringValue)
        let present = try container(keyedBy: AnyKey.self).allKeys
        for key in present where !known.contains(key.stringValue) {
            throw UnknownKeyError(path: codingPath.map(\.stringValue) + [key.stringValue], suggestion: nearest(key.stringValue, in: known))
        }
        return try container(keyedBy: Keys.self)
    }
}

extension KeyedDecodingContainer {
    /// The value at `key`, or `fallback` when the key is absent.
    func value<T: Decodable>(_ key: Key, default fallback: @autoclosure () -> T) throws -> T {
        try decodeIfPresent(T.self, forKey: key) ?? fallback()
    }
}
