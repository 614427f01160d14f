import CGTCheckpoint
import CGTJob
import CGTModel

/// What a method adds to the training loop beyond its exit weighting and its phases: the loop
/// calls every hook at fixed points and knows no method by name. A hook sees what it may use
/// (`HookContext`), never the trainer.
protocol TrainingHook: AnyObject {
    /// After rank 0's state reached every rank (start or resume): a hook whose state rank 0
    /// read from a checkpoint passes it on here.
    func synchronized(_ context: HookContext) throws
    /// After the forward pass and the objective of a step in epoch `epoch`, with the step's predictions.
    func stepTrained(_ context: HookContext, epoch: Int, predictions: ExitPredictions)
    /// After the optimizer step of a step that updated the parameters.
    func stepFinished(_ context: HookContext, step: FinishedStep) throws
    /// After the last step of epoch `epoch` (0-based), before its metrics are written.
    func epochTrained(_ context: HookContext, epoch: Int) throws
    /// Whether epoch `epoch` may stop mid-way on a stop signal: false while the hook gathers
    /// over the epoch what a checkpoint does not hold; the stop then waits for the epoch's end.
    func allowsStopWithin(_ context: HookContext, epoch: Int) -> Bool
    /// The class groups the hook has chosen (ClassyNet), which the loop then trains and evaluates with.
    var chosenGroups: ClassGroups? { get }
    /// Gathers what the hook keeps in checkpoints from every rank: a collective every rank
    /// calls before rank 0 writes one.
    func gatherState(_ context: HookContext) throws
    /// Puts the state `gatherState` collected into `checkpoint` (rank 0).
    func record(into checkpoint: inout Checkpoint)
    /// Takes the hook's state back from a checkpoint of the run (rank 0; `synchronized`
    /// passes it on); `source` names the file in errors.
    func restore(from checkpoint: Checkpoint, source: String) throws
}

extension TrainingHook {
    func synchronized(_ context: HookContext) throws {}
    func stepTrained(_ context: HookContext, epoch: Int, predictions: ExitPredictions) {}
    func epochTrained(_ context: HookContext, epoch: Int) throws {}
    func allowsStopWithin(_ context: HookContext, epoch: Int) -> Bool { true }
    func stepFinished(_ context: HookContext, step: FinishedStep) throws {}
    var chosenGroups: ClassGroups? { nil }
    func gatherState(_ context: HookContext) throws {}
    func record(into checkpoint: inout Checkpoint) {}
    func restore(from checkpoint: Checkpoint, source: String) throws {}
}

/// What a hook may use of the run: the network, the ranks' collectives, and a line to say.
struct HookContext {
    let network: EarlyExitNetwork
    let strategy: DataParallelStrategy
    let say: (String) -> Void
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

/// A method's part of the loop: how its exits are weighted and the hooks it adds.
struct MethodParts {
    var weighting: ExitWeighting
    var hooks: [TrainingHook]
}

extension Job {
    /// The weighting and hooks of the job's method, for `network` trained on `classes` classes.
    func makeMethodParts(network: EarlyExitNetwork, classes: Int) -> MethodParts {
        let exits = network.exitCount
        switch method.choice {
        case .classyNet:
            // Given groups are set from the start (`givenClassGroups`): nothing to choose.
            guard let choice = classGroupChoice(classes: classes) else {
                return MethodParts(weighting: makeExitWeighting(), hooks: [])
            }
            return MethodParts(
                weighting: makeExitWeighting(),
                hooks: [
                    ClassGroupChoice(
                        groupingEpochs: choice.groupingEpochs, groupSize: choice.groupSize, classes: classes,
                        exits: exits)
                ])
        case .l2w(let spread, let settings):
            // One weight network: the backbone's steps are weighted by it, the meta step trains it.
            let weights = makeWeightNetwork(settings)
            let meta = L2WMetaStep(
                weights: weights, network: network, labelSmoothing: training.labelSmoothing, tau: method.tau,
                interval: settings.metaInterval, learningRate: settings.metaLr,
                relativeStep: settings.finiteDifferenceStep, spread: spread,
                gradientEquilibrium: method.gradientEquilibrium)
            return MethodParts(weighting: weights, hooks: [meta])
        case .hardCGT, .softCGT, .branchyNet, .cascadeOptimization:
            return MethodParts(weighting: makeExitWeighting(), hooks: [])
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
    private(set) var chosenGroups: ClassGroups?

    init(groupingEpochs: Int, groupSize: Int, classes: Int, exits: Int) {
        self.groupingEpochs = groupingEpochs
        self.groupSize = groupSize
        correct = Array(repeating: Array(repeating: 0, count: classes), count: exits)
        counts = Array(repeating: 0, count: classes)
    }

    /// Whether epoch `epoch` is the one the groups are chosen from.
    private func chooses(epoch: Int) -> Bool {
        chosenGroups == nil && epoch + 1 == groupingEpochs
    }

    /// The groups a checkpoint of the run holds, once chosen.
    func restore(from checkpoint: Checkpoint, source: String) throws {
        chosenGroups = checkpoint.classGroups
    }

    /// Rank 0's groups (read from a checkpoint) reach every rank.
    func synchronized(_ context: HookContext) throws {
        let network = context.network
        var membership =
            chosenGroups?.membership ?? Array(repeating: -1, count: network.exitCount * network.classes)
        try context.strategy.broadcast(&membership)
        if membership[0] >= 0 { chosenGroups = ClassGroups(classes: network.classes, membership: membership) }
    }

    /// The recall tallied over the choosing epoch is not in a checkpoint.
    func allowsStopWithin(_ context: HookContext, epoch: Int) -> Bool { !chooses(epoch: epoch) }

    func stepTrained(_ context: HookContext, epoch: Int, predictions: ExitPredictions) {
        guard chooses(epoch: epoch) else { return }
        predictions.tallyRecall(correct: &correct, counts: &counts)
    }

    func epochTrained(_ context: HookContext, epoch: Int) throws {
        guard chooses(epoch: epoch) else { return }
        let classes = counts.count
        let exits = correct.count
        var totals = correct.flatMap { $0 } + counts
        try context.strategy.sum(&totals)
        let summedCounts = Array(totals.suffix(classes))
        let recall = (0..<exits).map { e in
            (0..<classes).map { c in summedCounts[c] > 0 ? totals[e * classes + c] / summedCounts[c] : 0 }
        }
        let groups = ClassGroups.choose(recall: recall, groupSize: groupSize)
        chosenGroups = groups
        let described = groups.groups.dropLast().enumerated().map { "exit \($0.offset + 1): \($0.element ?? [])" }
            .joined(separator: ", ")
        context.say(
            "classynet groups chosen after epoch \(epoch + 1): \(described); the last exit answers every class")
    }
}
