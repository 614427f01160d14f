import XCTest

/// Asserts |actual - expected| <= absolute + relative * |expected|, reporting at the caller's line.
public func assertClose(
    _ actual: Float, _ expected: Float, relative: Float = 1e-5, absolute: Float = 1e-6,
    _ message: @autoclosure () -> String = "", file: StaticString = #filePath, line: UInt = #line
) {
    let allowed = absolute + relative * abs(expected)
    if !(abs(actual - expected) <= allowed) {
        XCTFail("\(actual) is not within \(allowed) of \(expected). \(message())", file: file, line: line)
    }
}

/// Element-wise `assertClose`, naming the first index that differs.
public func assertAllClose(
    _ actual: [Float], _ expected: [Float], relative: Float = 1e-5, absolute: Float = 1e-6,
    _ message: @autoclosure () -> String = "", file: StaticString = #filePath, line: UInt = #line
) {
    guard actual.count == expected.count else {
        XCTFail("lengths differ: \(actual.count) vs \(expected.count). \(message())", file: file, line: line)
        return
    }
    for i in actual.indices {
        let allowed = absolute + relative * abs(expected[i])
        if !(abs(actual[i] - expected[i]) <= allowed) {
            XCTFail(
                "index \(i): \(actual[i]) is not within \(allowed) of \(expected[i]). \(message())", file: file,
                line: line)
            return
        }
    }
}

/// The largest |a - b| / max(|a|, |b|, floor) over two arrays: how far a gradient check is off.
public func maxRelativeError(_ a: [Double], _ b: [Double], floor: Double = 1e-3) -> Double {
    precondition(a.count == b.count, "lengths differ")
    return zip(a, b).map { abs($0 - $1) / max(abs($0), abs($1), floor) }.max() ?? 0
}

/// Asserts that two Float arrays hold the same values (+0 and -0 count as equal), naming the first index that differs.
public func assertExactlyEqual(
    _ actual: [Float], _ expected: [Float], _ message: @autoclosure () -> String = "",
    file: StaticString = #filePath, line: UInt = #line
) {
    guard actual.count == expected.count else {
        XCTFail("lengths differ: \(actual.count) vs \(expected.count). \(message())", file: file, line: line)
        return
    }
    if let i = actual.indices.first(where: { actual[$0] != expected[$0] }) {
        XCTFail("index \(i): \(actual[i]) != \(expected[i]). \(message())", file: file, line: line)
    }
}
