import CGTJob
import Foundation
import XCTest

final class LearningRateScheduleTests: XCTestCase {
    func section(_ name: String, warmup: Double = 0) -> ScheduleSection {
        var s = ScheduleSection()
        s.name = ScheduleKind(rawValue: name)!
        s.warmupEpochs = warmup
        s.stepSize = 2
        s.gamma = 0.5
        s.minLr = 0.1
        return s
    }

    func testConstantWithWarmup() {
        let schedule = LearningRateSchedule(
            section: section("constant", warmup: 1), baseRate: 1, stepsPerEpoch: 4, epochs: 3)
        XCTAssertEqual((0..<6).map { schedule.rate(atStep: $0) }, [0.25, 0.5, 0.75, 1, 1, 1])
    }

    func testStepDecay() {
        let schedule = LearningRateSchedule(section: section("step"), baseRate: 1, stepsPerEpoch: 2, epochs: 6)
        // epochs 0-1: 1, epochs 2-3: 0.5, epochs 4-5: 0.25
        XCTAssertEqual(
            (0..<12).map { schedule.rate(atStep: $0) }, [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25])
    }

    func testCosineFromBaseToMinimum() {
        let schedule = LearningRateSchedule(section: section("cosine"), baseRate: 1.1, stepsPerEpoch: 5, epochs: 2)
        XCTAssertEqual(schedule.rate(atStep: 0), 1.1, accuracy: 1e-6)
        // halfway: min + (base - min) / 2
        XCTAssertEqual(schedule.rate(atStep: 5), 0.6, accuracy: 1e-6)
        XCTAssertEqual(schedule.rate(atStep: 10), 0.1, accuracy: 1e-6)
        let expected = 0.1 + 1.0 * 0.5 * (1 + cos(Double.pi * 3 / 10))
        XCTAssertEqual(Double(schedule.rate(atStep: 3)), expected, accuracy: 1e-6)
    }
}
