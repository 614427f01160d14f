import CGTModel

/// The training objective a benchmark step computes (`cgt bench --method`): SoftCGT, BranchyNet,
/// or one of the options that couple the exits on top of BranchyNet's fixed weights, so that
/// their time next to BranchyNet's is the option's own cost.
public enum BenchmarkMethod: String, CaseIterable, Sendable {
    case softCGT = "softcgt"
    case branchyNet = "branchynet"
    /// BranchyNet with `method.distillation` (weight 0.5, temperature 3).
    case distillation
    /// BranchyNet with `method.gradient_equilibrium`.
    case equilibrium
    /// BranchyNet with `method.boosting`.
    case boosting

    /// The exit weighting of the step: SoftCGT's gates at tau 0.9, or fixed weights falling linearly
    /// from 1.0 at the first exit to 0.4 at the last (1.0 / 0.7 / 0.4 for three exits).
    func weighting(exits: Int) -> ExitWeighting {
        switch self {
        case .softCGT: return SoftCGT(tau: 0.9)
        case .branchyNet, .distillation, .equilibrium, .boosting:
            return FixedExitWeights((0..<exits).map { 1 - 0.6 * Float($0) / Float(max(1, exits - 1)) })
        }
    }

    /// Sets the network's and the objective's options for the method.
    func configure(network: EarlyExitNetwork, objective: ExitObjective) {
        network.exitCombination = self == .boosting ? .boosted : .independent
        objective.distillation = self == .distillation ? .init(weight: 0.5, temperature: 3) : nil
    }

    var gradientEquilibrium: Bool { self == .equilibrium }
}
