import CGTData
import XCTest

/// Asserts that `body` throws a `DatasetError` naming `file` in one line that mentions every word.
func assertDatasetError<T>(
    file path: String, mentions words: [String], _ body: () throws -> T,
    file: StaticString = #filePath, line: UInt = #line
) {
    do {
        _ = try body()
        XCTFail("no error; expected one about \(words)", file: file, line: line)
    } catch let error as DatasetError {
        let text = error.description
        XCTAssertEqual(error.file, path, text, file: file, line: line)
        XCTAssertFalse(text.contains("\n"), "one line: \(text)", file: file, line: line)
        for word in words {
            XCTAssertTrue(text.contains(word), "'\(text)' should mention '\(word)'", file: file, line: line)
        }
    } catch {
        XCTFail("expected a DatasetError, got \(type(of: error)): \(error)", file: file, line: line)
    }
}

/// Deterministic bytes that deflate compresses only partly (a linear congruential sequence).
func pseudoRandomBytes(_ count: Int, seed: UInt32 = 1) -> [UInt8] {
    var state = seed
    return (0..<count).map { _ in
        state = state &* 1_664_525 &+ 1_013_904_223
        return UInt8(truncatingIfNeeded: state >> 24)
    }
}
