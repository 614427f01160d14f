import CGTJob
import CGTModel

/// What a method adds to the training loop beyond its exit weighting and its phases: the loop
/// calls every hook at fixed points and knows no method by name.
protocol TrainingHook: AnyObject {
    /// After rank 0's state reached every rank (start or resume).
    func synchronized(_ trainer: Trainer) throws
    /// After the forward pass and the objective of a step in epoch `epoch`, with the step's predictions.
    func stepTrained(_ trainer: Trainer, epoch: Int, predictions: ExitPredictions)
    /// After the optimizer step of a step that updated the parameters.
    func stepFinished(_ trainer: Trainer, step: FinishedStep) throws
    /// After the last step of epoch `epoch` (0-based), before its metrics are written.
    func epochTrained(_ trainer: Trainer, epoch: Int) throws
    /// Whether epoch `epoch` may stop mid-way on a stop signal: false while the hook gathers
    /// over the epoch what a checkpoint does not hold; the stop then waits for the epoch's end.
    func allowsStopWithin(_ trainer: Trainer, epoch: Int) -> Bool
}

extension TrainingHook {
    func synchronized(_ trainer: Trainer) throws {}
    func stepTrained(_ trainer: Trainer, epoch: Int, predictions: ExitPredictions) {}
    func epochTrained(_ trainer: Trainer, epoch: Int) throws {}
    func allowsStopWithin(_ trainer: Trainer, epoch: Int) -> Bool { true }
    func stepFinished(_ trainer: Trainer, step: FinishedStep) throws {}
}

/// A step the optimizer has just applied: its batch and what its forward pass used.
struct FinishedStep {
    var x: UnsafeBufferPointer<Float>
    var labels: UnsafeBufferPointer<Int32>
    var sampleIDs: UnsafeBufferPointer<Int64>
    /// This rank's samples, and the step's over all ranks.
    var batch: Int
    var globalCount: Int
    var randomKey: UInt64
    var scope: TrainingScope
}

extension Job {
    /// The hooks the job's method needs.
    func makeTrainingHooks(classes: Int, exits: Int) -> [TrainingHook] {
        switch method.choice {
        case .classyNet:
            // Given groups are set from the start (`givenClassGroups`): nothing to choose.
            guard let choice = classGroupChoice(classes: classes) else { return [] }
            return [
                ClassGroupChoice(
                    groupingEpochs: choice.groupingEpochs, groupSize: choice.groupSize, classes: classes, exits: exits)
            ]
        case .l2w(let spread, let network):
            return [
                L2WMetaStep(
                    tau: method.tau, interval: network.metaInterval, learningRate: network.metaLr,
                    relativeStep: network.finiteDifferenceStep, spread: spread,
                    gradientEquilibrium: method.gradientEquilibrium)
            ]
        case .hardCGT, .softCGT, .branchyNet, .cascadeOptimization:
            return []
        }
    }
}

/// ClassyNet: unless the job gives the class groups, trains `groupingEpochs` epochs with every
/// exit learning every class, then picks each shallow exit's classes from the per-class recall
/// of the last of them, summed over ranks (`ClassGroups.choose`). Rank 0's groups reach the
/// other ranks on resume.
final class ClassGroupChoice: TrainingHook {
    let groupingEpochs: Int
    let groupSize: Int
    private var correct: [[Double]]
    private var counts: [Double]

    init(groupingEpochs: Int, groupSize: Int, classes: Int, exits: Int) {
        self.groupingEpochs = groupingEpochs
        self.groupSize = groupSize
        correct = Array(repeating: Array(repeating: 0, count: classes), count: exits)
        counts = Array(repeating: 0, count: classes)
    }

    /// Whether epoch `epoch` is the one the groups are chosen from.
    private func chooses(_ trainer: Trainer, epoch: Int) -> Bool {
        trainer.classGroups == nil && epoch + 1 == groupingEpochs
    }

    func synchronized(_ trainer: Trainer) throws {
        let network = trainer.network
        var membership =
            trainer.classGroups?.membership ?? Array(repeating: -1, count: network.exitCount * network.classes)
        try trainer.strategy.broadcast(&membership)
        if membership[0] >= 0 { trainer.setClassGroups(ClassGroups(classes: network.classes, membership: membership)) }
    }

    /// The recall tallied over the choosing epoch is not in a checkpoint.
    func allowsStopWithin(_ trainer: Trainer, epoch: Int) -> Bool { !chooses(trainer, epoch: epoch) }

    func stepTrained(_ trainer: Trainer, epoch: Int, predictions: ExitPredictions) {
        guard chooses(trainer, epoch: epoch) else { return }
        predictions.tallyRecall(correct: &correct, counts: &counts)
    }

    func epochTrained(_ trainer: Trainer, epoch: Int) throws {
        guard chooses(trainer, epoch: epoch) else { return }
        let classes = counts.count
        let exits = correct.count
        var totals = correct.flatMap { $0 } + counts
        try trainer.strategy.sum(&totals)
        let summedCounts = Array(totals.suffix(classes))
        let recall = (0..<exits).map { e in
            (0..<classes).map { c in summedCounts[c] > 0 ? totals[e * classes + c] / summedCounts[c] : 0 }
        }
        let groups = ClassGroups.choose(recall: recall, groupSize: groupSize)
        trainer.setClassGroups(groups)
        let described = groups.groups.dropLast().enumerated().map { "exit \($0.offset + 1): \($0.element ?? [])" }
            .joined(separator: ", ")
        trainer.progress.say(
            "classynet groups chosen after epoch \(epoch + 1): \(described); the last exit answers every class")
    }
}
