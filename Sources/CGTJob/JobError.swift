import CGTFiles

/// A job file or override that cgt cannot run, said in one line.
public struct JobError: LocatedError {
    public let source: String
    public let key: String
    public let problem: String

    public init(source: String, key: String, _ problem: String) {
        self.source = source
        self.key = key
        self.problem = problem
    }

    public var location: [String] { [source, key] }
}

/// The closest of `candidates` to `word` by edit distance, if it is close enough to be a typo.
package func nearest(_ word: String, in candidates: [String]) -> String? {
    func distance(_ a: [Character], _ b: [Character]) -> Int {
        var previous = Array(0...b.count)
        for (i, ca) in a.enumerated() {
            var current = [i + 1]
            for (j, cb) in b.enumerated() {
                current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (ca == cb ? 0 : 1)))
            }
            previous = current
        }
        return previous[b.count]
    }
    let scored = candidates.map { ($0, distance(Array(word), Array($0))) }.min { $0.1 < $1.1 }
    guard let (best, d) = scored, d <= max(2, word.count / 3) else { return nil }
    return best
}
