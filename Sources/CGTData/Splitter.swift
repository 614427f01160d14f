import CGTRandom

/// A fraction as the user wrote it in decimal ("0.3"), kept exact, so that split sizes follow
/// the documented rounding rule rather than the binary representation of 0.3.
public struct SplitFraction: Equatable, Sendable, CustomStringConvertible {
    public let numerator: Int
    /// A power of ten.
    public let denominator: Int

    public static let zero = SplitFraction(numerator: 0, denominator: 1)

    private init(numerator: Int, denominator: Int) {
        self.numerator = numerator
        self.denominator = denominator
    }

    /// Parses a decimal in [0, 1) such as "0.3", ".25", "0" or "5e-2", with at most 9 significant decimal places.
    public init?(_ text: String) {
        var mantissa = Substring(text.trimmed)
        var exponent = 0
        if let e = mantissa.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            guard let value = Int(mantissa[mantissa.index(after: e)...]) else { return nil }
            exponent = value
            mantissa = mantissa[..<e]
        }
        let parts = mantissa.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count),
            parts.allSatisfy({ $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }),
            parts.contains(where: { !$0.isEmpty })
        else { return nil }
        var digits = String(parts[0]) + (parts.count == 2 ? String(parts[1]) : "")
        var places = (parts.count == 2 ? parts[1].count : 0) - exponent
        while places < 0 {
            digits += "0"
            places += 1
        }
        while places > 0 && digits.hasSuffix("0") {
            digits.removeLast()
            places -= 1
        }
        digits = String(digits.drop(while: { $0 == "0" }))
        guard places <= 9, digits.count <= 10, let value = Int(digits.isEmpty ? "0" : digits) else { return nil }
        var denominator = 1
        for _ in 0..<places { denominator *= 10 }
        guard value < denominator else { return nil }
        self.init(numerator: value, denominator: denominator)
    }

    /// The fraction whose shortest decimal spelling is that of `value` (0.3 is 3/10).
    public init?(_ value: Double) {
        guard value.isFinite else { return nil }
        self.init("\(value)")
    }

    public var value: Double { Double(numerator) / Double(denominator) }
    public var isZero: Bool { numerator == 0 }

    public var description: String {
        guard denominator > 1 else { return "\(numerator)" }
        let places = String(denominator).count - 1
        return "0." + String(numerator).leftPadded(to: places)
    }

    /// `n` times this fraction, rounded to the nearest integer with halves rounded up, exactly.
    public func of(_ n: Int) -> Int { (2 * n * numerator + denominator) / (2 * denominator) }

    /// ⌊n × fraction⌋ and the remainder (n × numerator mod denominator), which orders rounding.
    func floorAndRemainder(_ n: Int) -> (floor: Int, remainder: Int) {
        ((n * numerator) / denominator, (n * numerator) % denominator)
    }
}

/// How to split samples that come without a test split of their own.
public struct SplitPlan: Equatable, Sendable {
    public var testFraction: SplitFraction
    public var validationFraction: SplitFraction
    public var stratified: Bool
    public var seed: UInt64

    public init(
        testFraction: SplitFraction, validationFraction: SplitFraction = .zero, stratified: Bool = true,
        seed: UInt64 = 0
    ) {
        self.testFraction = testFraction
        self.validationFraction = validationFraction
        self.stratified = stratified
        self.seed = seed
    }
}

/// The samples (indices into the source, ascending) of each split.
public struct SplitAssignment: Equatable, Sendable {
    public var train: [Int]
    public var validation: [Int]
    public var test: [Int]
}

/// Seeded, optionally stratified train/validation/test splits with a documented rounding rule.
///
/// Sizes. With N samples, fraction f and class sizes n_c:
/// - unstratified: round(N f) samples (halves up), at most N - 1 over test and validation;
/// - stratified: the split's total is T = round(N f); class c first gets ⌊n_c f⌋, then the
///   T - Σ⌊n_c f⌋ samples left over go one each to the classes with the largest remainders
///   n_c f - ⌊n_c f⌋ (ties to the smaller class id). So every class's count is within one of its
///   exact share, and the total is exactly round(N f).
/// A split never takes a class's last sample for training: when it would, that class gets one
/// fewer (and the total falls short by one). Test is sized first, then validation (its
/// fraction is also of N, or of n_c) from what test left. Fractions are the exact decimals given.
///
/// Membership. One Fisher-Yates shuffle of all N indices, drawn from xoshiro256** seeded with
/// `seed` (stream 0x5311); walking the shuffled order, each sample goes to test until its class
/// (or, unstratified, the whole set) has its test count, then to validation likewise, then to
/// train. Each split keeps the samples in source order.
public enum Splitter {
    static let stream: UInt64 = 0x5311

    public static func split(labels: [Int32], classes: Int, plan: SplitPlan) -> SplitAssignment {
        let groups = plan.stratified ? classes : 1
        var counts = [Int](repeating: 0, count: groups)
        for label in labels { counts[plan.stratified ? Int(label) : 0] += 1 }
        let test = quotas(counts: counts, fraction: plan.testFraction, taken: [Int](repeating: 0, count: groups))
        let validation = quotas(counts: counts, fraction: plan.validationFraction, taken: test)

        var order = Array(0..<labels.count)
        var generator = SeededGenerator(seed: plan.seed, stream: stream)
        for i in stride(from: order.count - 1, to: 0, by: -1) {
            order.swapAt(i, Int(boundedRandom(UInt64(i + 1), using: &generator)))
        }
        var testTaken = [Int](repeating: 0, count: groups)
        var validationTaken = testTaken
        var result = SplitAssignment(train: [], validation: [], test: [])
        for index in order {
            let group = plan.stratified ? Int(labels[index]) : 0
            if testTaken[group] < test[group] {
                testTaken[group] += 1
                result.test.append(index)
            } else if validationTaken[group] < validation[group] {
                validationTaken[group] += 1
                result.validation.append(index)
            } else {
                result.train.append(index)
            }
        }
        result.train.sort()
        result.validation.sort()
        result.test.sort()
        return result
    }

    /// How many samples of each group a split of `fraction` takes, given `taken` already gone
    /// to earlier splits; the rule is in the type's documentation.
    static func quotas(counts: [Int], fraction: SplitFraction, taken: [Int]) -> [Int] {
        let room = counts.indices.map { max(0, counts[$0] - taken[$0] - 1) }
        var quota = counts.indices.map { min(fraction.floorAndRemainder(counts[$0]).floor, room[$0]) }
        var left = fraction.of(counts.reduce(0, +)) - quota.reduce(0, +)
        let byRemainder = counts.indices.sorted {
            let a = fraction.floorAndRemainder(counts[$0]).remainder
            let b = fraction.floorAndRemainder(counts[$1]).remainder
            return a != b ? a > b : $0 < $1
        }
        for group in byRemainder where left > 0 && quota[group] < room[group] {
            quota[group] += 1
            left -= 1
        }
        return quota
    }

    /// A uniform integer in 0..<bound (Lemire's multiply-and-reject, without modulo bias).
    static func boundedRandom(_ bound: UInt64, using generator: inout SeededGenerator) -> UInt64 {
        let threshold = (0 &- bound) % bound
        while true {
            let product = generator.next().multipliedFullWidth(by: bound)
            if product.low >= threshold { return product.high }
        }
    }
}
