import CGTModel

/// A span of epochs trained with one scope and one weighting: the unit that staged schemes
/// (Cascade Optimization, the disjoint and mixed regimes, progressive exit activation) are
/// made of. Ordinary joint training is a single phase.
public struct TrainingPhase: Equatable, Sendable {
    /// A name for progress lines ("stage 2 of 3", "heads").
    public var name: String
    public var epochs: Range<Int>
    public var scope: TrainingScope
    /// Exit weights that replace the method's for this phase (one-hot where one exit trains).
    public var fixedWeights: [Float]?
    /// The phase starts with zeroed optimizer state and runs its own learning-rate schedule
    /// over its epochs, as a separate training run would.
    public var restartsOptimizer: Bool
}

extension Job {
    /// The phases of this job, in order, covering `0..<training.epochs`.
    ///
    /// - `co` (Cascade Optimization, read from CESS, HPCC 2024, and branch-by-branch schemes
    ///   such as BTS-EE): stage e trains only exit e's loss, updating the blocks after exit
    ///   e-1 up to exit e and head e; earlier blocks and heads are frozen, later ones not run.
    /// - `disjoint`: the backbone and the last exit on the last exit's loss, then the other
    ///   heads on the frozen backbone with the method's weights.
    /// - `mixed`: the same first phase, then everything jointly with the method's weights.
    /// - `joint`: everything from the start; with `exit_start_epochs`, exit e (and the blocks
    ///   only it needs) joins at its epoch, without restarting the optimizer.
    public func trainingPhases() -> [TrainingPhase] {
        let exits = model.exits.count
        let epochs = training.epochs
        let exitBlocks = model.exits.map { $0 - 1 }
        func oneHot(_ e: Int) -> [Float] { (0..<exits).map { $0 == e ? 1 : 0 } }
        switch method.choice {
        case .cascadeOptimization(let stageEpochs):
            let lengths =
                stageEpochs ?? (0..<exits).map { e in epochs / exits + (e >= exits - epochs % exits ? 1 : 0) }
            var start = 0
            return lengths.enumerated().map { e, length in
                defer { start += length }
                let scope = TrainingScope(
                    exitLimit: e + 1, frozenBlocks: e == 0 ? 0 : exitBlocks[e - 1] + 1, frozenExits: Set(0..<e))
                return TrainingPhase(
                    name: "stage \(e + 1) of \(exits)", epochs: start..<(start + length), scope: scope,
                    fixedWeights: oneHot(e), restartsOptimizer: true)
            }
        case .hardCGT, .softCGT, .branchyNet, .classyNet, .l2w:
            break
        }
        if training.regime != .joint {
            let backbone = training.backboneEpochs ?? max(1, epochs / 2)
            let first = TrainingPhase(
                name: "backbone", epochs: 0..<backbone,
                scope: TrainingScope(exitLimit: exits, frozenExits: Set(0..<(exits - 1))),
                fixedWeights: oneHot(exits - 1), restartsOptimizer: true)
            let second =
                training.regime == .disjoint
                ? TrainingPhase(
                    name: "heads", epochs: backbone..<epochs,
                    scope: TrainingScope(exitLimit: exits, frozenBlocks: model.blockCount, frozenExits: [exits - 1]),
                    fixedWeights: nil, restartsOptimizer: true)
                : TrainingPhase(
                    name: "joint", epochs: backbone..<epochs, scope: .everything(exits: exits),
                    fixedWeights: nil, restartsOptimizer: true)
            return [first, second]
        }
        guard let starts = training.exitStartEpochs else {
            return [
                TrainingPhase(
                    name: "joint", epochs: 0..<epochs, scope: .everything(exits: exits), fixedWeights: nil,
                    restartsOptimizer: true)
            ]
        }
        let boundaries = Array(Set(starts)).sorted() + [epochs]
        return zip(boundaries, boundaries.dropFirst()).map { start, end in
            let active = starts.filter { $0 <= start }.count
            return TrainingPhase(
                name: active == 1 ? "exit 1" : "exits 1-\(active)", epochs: start..<end,
                scope: TrainingScope(exitLimit: active),
                fixedWeights: nil, restartsOptimizer: start == 0)
        }
    }
}
