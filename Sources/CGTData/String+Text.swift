/// Small text helpers the readers share for parsing and for messages.
extension String {
    /// The string without leading and trailing whitespace (CSV fields, header values).
    var trimmed: String {
        String(drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }

    /// The string padded on the left to `width` characters (hex bytes, decimal places).
    func leftPadded(to width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }

    /// The string as a message shows text from a file: quoted, cut to `limit` characters with
    /// the full length said, control characters escaped, so one line stays one short line.
    var quotedForMessage: String {
        let limit = 40
        let shown = prefix(limit).unicodeScalars.map {
            $0.properties.generalCategory == .control ? $0.escaped(asASCII: true) : String($0)
        }
        .joined()
        return count > limit ? "'\(shown)…' (\(count) characters)" : "'\(shown)'"
    }
}
