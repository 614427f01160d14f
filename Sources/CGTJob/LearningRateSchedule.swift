import Foundation

/// The learning rate at every optimizer step: a linear warm-up, then constant, step decay
/// (x gamma every `step_size` epochs) or cosine annealing to `min_lr` (Loshchilov and Hutter, 2017).
public struct LearningRateSchedule: Sendable {
    public let section: ScheduleSection
    public let baseRate: Float
    public let stepsPerEpoch: Int
    public let totalSteps: Int

    public init(section: ScheduleSection, baseRate: Float, stepsPerEpoch: Int, epochs: Int) {
        self.section = section
        self.baseRate = baseRate
        self.stepsPerEpoch = max(1, stepsPerEpoch)
        totalSteps = max(1, stepsPerEpoch * epochs)
    }

    /// The rate for step `step` (0-based, counted over the whole run).
    public func rate(atStep step: Int) -> Float {
        let warmupSteps = Int((section.warmupEpochs * Double(stepsPerEpoch)).rounded())
        if step < warmupSteps {
            return baseRate * Float(step + 1) / Float(warmupSteps)
        }
        switch section.name {
        case .step:
            let epoch = step / stepsPerEpoch
            return baseRate * Float(pow(Double(section.gamma), Double(epoch / section.stepSize)))
        case .cosine:
            let span = max(1, totalSteps - warmupSteps)
            let progress = Double(step - warmupSteps) / Double(span)
            return section.minLr + (baseRate - section.minLr) * Float(0.5 * (1 + cos(Double.pi * min(1, progress))))
        case .constant:
            return baseRate
        }
    }
}
