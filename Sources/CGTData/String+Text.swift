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
}
