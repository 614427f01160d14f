import CGTKernels
import CGTRandom
import CGTTestSupport
import Foundation
import XCTest

final class SeededGeneratorTests: XCTestCase {
    private func draws(_ generator: inout SeededGenerator, _ count: Int) -> [UInt64] {
        (0..<count).map { _ in generator.next() }
    }

    /// From state (1, 2, 3, 4) the output is the published start of xoshiro256**'s sequence.
    func testKnownAnswerFromState() {
        var generator = SeededGenerator(state: [1, 2, 3, 4])
        XCTAssertEqual(
            draws(&generator, 6),
            [
                11520, 0, 1_509_978_240, 1_215_971_899_390_074_240, 1_216_172_134_540_287_360, 607_988_272_756_665_600,
            ])
    }

    /// Seeding fills the state with SplitMix64's outputs (the first for seed 0 is 0xE220A8397B1DCDAF),
    /// and the sequence then matches the scalar xoshiro256** reference.
    func testSeedingAndSequenceMatchScalarReference() {
        XCTAssertEqual(SeededGenerator(seed: 0).stateWords[0], 0xE220_A839_7B1D_CDAF)
        for seed: UInt64 in [0, 1, 42, .max] {
            var generator = SeededGenerator(seed: seed)
            var reference = Reference.Xoshiro256StarStar(seed: seed)
            XCTAssertEqual(generator.stateWords, reference.s, "seed \(seed)")
            XCTAssertEqual(draws(&generator, 100), (0..<100).map { _ in reference.next() }, "seed \(seed)")
        }
    }

    /// The same seed gives the same sequence; another seed another one.
    func testSameSeedSameSequence() {
        var a = SeededGenerator(seed: 7)
        var b = SeededGenerator(seed: 7)
        var c = SeededGenerator(seed: 8)
        let first = draws(&a, 50)
        XCTAssertEqual(first, draws(&b, 50))
        XCTAssertNotEqual(first, draws(&c, 50))
        XCTAssertEqual(a, b)
        _ = a.next()
        XCTAssertNotEqual(a, b)
    }

    /// stateWords and init(state:) round-trip: a restored generator continues the original sequence.
    func testStateRoundTrip() {
        var original = SeededGenerator(seed: 99)
        _ = draws(&original, 13)
        let saved = original.stateWords
        var restored = SeededGenerator(state: saved)
        XCTAssertEqual(restored.stateWords, saved)
        XCTAssertEqual(restored, original)
        XCTAssertEqual(draws(&restored, 40), draws(&original, 40))
        _ = restored.normal()
        _ = original.normal()
        XCTAssertEqual(restored.uniform(-1, 1), original.uniform(-1, 1))
    }

    /// Different streams of one seed give different sequences, and each stream is reproducible.
    func testStreamsDiffer() {
        let streams = (0..<8).map { stream -> [UInt64] in
            var generator = SeededGenerator(seed: 42, stream: UInt64(stream))
            return draws(&generator, 4)
        }
        for i in streams.indices {
            for j in streams.indices where j > i {
                XCTAssertNotEqual(streams[i], streams[j], "streams \(i) and \(j)")
                XCTAssertTrue(Set(streams[i]).isDisjoint(with: streams[j]), "streams \(i) and \(j) share outputs")
            }
        }
        var again = SeededGenerator(seed: 42, stream: 5)
        XCTAssertEqual(draws(&again, 4), streams[5])
    }

    /// uniform(low, high) stays in [low, high), reaches both ends closely, and has mean (low + high) / 2.
    func testUniformInRange() {
        var generator = SeededGenerator(seed: 3)
        let count = 100_000
        var total = 0.0
        var smallest = Float.infinity
        var largest = -Float.infinity
        for _ in 0..<count {
            let u = generator.uniform(-2, 3)
            XCTAssertTrue(u >= -2 && u < 3, "\(u)")
            total += Double(u)
            smallest = min(smallest, u)
            largest = max(largest, u)
        }
        XCTAssertLessThan(smallest, -1.999)
        XCTAssertGreaterThan(largest, 2.999)
        let standardError = 5 / 12.0.squareRoot() / Double(count).squareRoot()
        XCTAssertEqual(total / Double(count), 0.5, accuracy: 4 * standardError)
    }

    /// The largest 24-bit draw still maps below `high`, also for ranges that do not start at 0 or -high.
    ///
    /// The state is chosen so that the next output has its top 24 bits set (xoshiro256**'s output
    /// function rotl(s1 * 5, 7) * 9 is inverted with the multiplicative inverses of 9 and 5).
    func testUniformTopDrawStaysBelowHigh() {
        func inverse(_ a: UInt64) -> UInt64 {
            var x = a
            for _ in 0..<5 { x = x &* (2 &- a &* x) }
            return x
        }
        let output: UInt64 = 0xFFFF_FF12_3456_789A
        let s1 = Reference.Xoshiro256StarStar.rotl(output &* inverse(9), 57) &* inverse(5)
        var check = Reference.Xoshiro256StarStar(state: [1, s1, 2, 3])
        XCTAssertEqual(check.next(), output, "the crafted state must produce the crafted output")
        for (low, high): (Float, Float) in [(-1, 1), (0, 1), (0.5, 1), (1, 1.5), (-3, -2)] {
            var generator = SeededGenerator(state: [1, s1, 2, 3])
            let u = generator.uniform(low, high)
            XCTAssertTrue(u >= low && u < high, "uniform(\(low), \(high)) returned \(u) for the largest draw")
        }
    }

    /// normal() has mean 0 and standard deviation 1 within a few standard errors over 100k draws,
    /// and matches Box-Muller evaluated in Double on the reference stream.
    func testNormalMoments() {
        var generator = SeededGenerator(seed: 11)
        var reference = Reference.Xoshiro256StarStar(seed: 11)
        let count = 100_000
        var total = 0.0
        var squares = 0.0
        for i in 0..<count {
            let z = generator.normal()
            if i < 1_000 {
                let u1 = max(Double(reference.next() >> 11) / 9_007_199_254_740_992, .leastNonzeroMagnitude)
                let u2 = Double(reference.next() >> 11) / 9_007_199_254_740_992
                let expected = (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2)
                assertClose(z, Float(expected), relative: 1e-6, absolute: 1e-6, "draw \(i)")
            }
            total += Double(z)
            squares += Double(z) * Double(z)
        }
        let mean = total / Double(count)
        let std = (squares / Double(count) - mean * mean).squareRoot()
        XCTAssertEqual(mean, 0, accuracy: 4 / Double(count).squareRoot())
        XCTAssertEqual(std, 1, accuracy: 4 / (2 * Double(count)).squareRoot())
    }
}
