/// Which parts of an early-exit network a training step runs and updates.
///
/// Staged schemes train parts of the network at a time: Cascade Optimization trains one
/// block range and its exit with everything before it frozen, the disjoint regime trains the
/// heads on a frozen backbone, and progressive activation leaves exits (and the blocks only
/// they need) out until their epoch comes. A frozen block runs in inference mode (BatchNorm
/// running statistics, no dropout), as `module.eval()` with `requires_grad = False` would in
/// PyTorch, so that neither its weights nor its statistics move.
public struct TrainingScope: Equatable, Sendable {
    /// Exits `0..<exitLimit` are evaluated; blocks after the last of them do not run.
    public var exitLimit: Int
    /// Blocks `0..<frozenBlocks` are frozen.
    public var frozenBlocks: Int
    /// Heads that are not updated, by exit index.
    public var frozenExits: Set<Int>

    public init(exitLimit: Int, frozenBlocks: Int = 0, frozenExits: Set<Int> = []) {
        self.exitLimit = exitLimit
        self.frozenBlocks = frozenBlocks
        self.frozenExits = frozenExits
    }

    /// Every block and every exit of a network with `exits` exits: ordinary joint training.
    public static func everything(exits: Int) -> TrainingScope { TrainingScope(exitLimit: exits) }
}
