import CGTKernels
import CGTTestSupport
import Foundation
import XCTest

/// The tempered softmax and the distillation gradient against plain Double loops, for class
/// counts with and without a scalar tail.
final class TemperedSoftmaxTests: XCTestCase {
    func testAgainstScalarReference() {
        for (rows, classes, t) in [(5, 10, Float(3)), (3, 16, 1), (4, 37, 0.5), (2, 1, 2)] {
            let n = rows * classes
            let student = Fixtures.normals(n, seed: UInt64(classes), scale: 4)
            let teacher = Fixtures.normals(n, seed: UInt64(classes) + 50, scale: 4)
            let before = Fixtures.normals(n, seed: 9)
            let buffers = (0..<5).map { _ in UnsafeMutableBufferPointer<Float>.allocate(capacity: n) }
            let losses = UnsafeMutableBufferPointer<Float>.allocate(capacity: rows)
            defer {
                buffers.forEach { $0.deallocate() }
                losses.deallocate()
            }
            let (p, logP, q, logQ, gradient) = (buffers[0], buffers[1], buffers[2], buffers[3], buffers[4])
            _ = gradient.initialize(from: before)
            student.withUnsafeBufferPointer {
                TemperedSoftmax.forward(
                    logits: $0, rows: rows, classes: classes, temperature: t, probabilities: p, logProbabilities: logP)
            }
            teacher.withUnsafeBufferPointer {
                TemperedSoftmax.forward(
                    logits: $0, rows: rows, classes: classes, temperature: t, probabilities: q, logProbabilities: logQ)
            }
            let weight: Float = 0.3
            TemperedSoftmax.distillationBackward(
                student: UnsafeBufferPointer(p), studentLog: UnsafeBufferPointer(logP), teacher: UnsafeBufferPointer(q),
                teacherLog: UnsafeBufferPointer(logQ), rows: rows, classes: classes, temperature: t, weight: weight,
                losses: losses, logitGradient: gradient)
            for r in 0..<rows {
                let range = (r * classes)..<((r + 1) * classes)
                let expectedP = Self.softmax(student[range], t)
                let expectedQ = Self.softmax(teacher[range], t)
                let kl = zip(expectedQ, expectedP).reduce(0.0) { $0 + $1.0 * Foundation.log($1.0 / $1.1) }
                XCTAssertEqual(
                    Double(losses[r]), Double(t * t) * kl, accuracy: 1e-4 * max(1, kl),
                    "loss of row \(r), \(classes) classes")
                for (k, c) in range.enumerated() {
                    XCTAssertEqual(Double(p[c]), expectedP[k], accuracy: 1e-6, "p[\(c)], \(classes) classes")
                    XCTAssertEqual(
                        Double(logP[c]), Foundation.log(expectedP[k]), accuracy: 1e-4, "log p[\(c)], \(classes) classes"
                    )
                    let expected = Double(before[c]) + Double(weight * t) * (expectedP[k] - expectedQ[k])
                    XCTAssertEqual(Double(gradient[c]), expected, accuracy: 1e-5, "gradient \(c), \(classes) classes")
                }
            }
        }
    }

    private static func softmax(_ z: ArraySlice<Float>, _ t: Float) -> [Double] {
        let scaled = z.map { Double($0) / Double(t) }
        let top = scaled.max()!
        let e = scaled.map { Foundation.exp($0 - top) }
        let total = e.reduce(0, +)
        return e.map { $0 / total }
    }
}
