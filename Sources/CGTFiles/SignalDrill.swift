import Foundation
import Synchronization

/// A fail point for the stop tests (`StopSignalStressTests`): with `CGT_TEST_SIGNAL=USR1:1:checkpoint:2`,
/// rank 1 sends itself SIGUSR1 the second time it reaches a checkpoint write.
///
/// A signal from outside lands wherever the process happens to be, so a test that sends one
/// cannot say what it tested; this one lands inside the work it names, every run. It is sent
/// with `kill(getpid())`, to the process, so the kernel delivers it to whichever thread it
/// picks, as it does a scheduler's. The rank comes from the launcher's environment (Open MPI,
/// PMI, Slurm), so the drill also reaches the seconds before MPI starts. Without the variable,
/// `reached` costs one load of a constant.
public enum SignalDrill {
    /// Where the signal is sent from.
    public enum Place: String, CaseIterable, Sendable {
        /// `cgt train` has started and MPI has not: the job file is not read yet.
        case startup
        /// A training step, between its forward and backward passes.
        case step
        /// The thread reading the next epoch's rows, as it starts.
        case readAhead = "read-ahead"
        /// A checkpoint write, between the model's tensors and the optimizer's.
        case checkpoint
        /// The BatchNorm re-estimation before an evaluation.
        case recalibration
        /// An evaluation of the test or validation split.
        case evaluation
    }

    struct Plan: Sendable {
        let signal: Int32
        let place: Place
        /// The visit of `place` that sends it (1: the first).
        let visit: Int
    }

    /// This process's drill, when `CGT_TEST_SIGNAL` names its rank; refused values are ignored
    /// (a test that mistypes one sees no signal and fails).
    static let plan: Plan? = {
        let environment = ProcessInfo.processInfo.environment
        guard let text = environment["CGT_TEST_SIGNAL"] else { return nil }
        let fields = text.split(separator: ":").map(String.init)
        guard fields.count == 4, let signal = SignalStop.number(named: fields[0]), let rank = Int(fields[1]),
            let place = Place(rawValue: fields[2]), let visit = Int(fields[3]), visit >= 1
        else { return nil }
        let launched = environment["OMPI_COMM_WORLD_RANK"] ?? environment["PMI_RANK"] ?? environment["SLURM_PROCID"]
        guard rank == Int(launched ?? "0") else { return nil }
        return Plan(signal: signal, place: place, visit: visit)
    }()

    private static let visits = Mutex<[Place: Int]>([:])

    /// Counts a visit of `place`; sends the drill's signal on the visit it names.
    public static func reached(_ place: Place) {
        guard let plan, plan.place == place else { return }
        let visit = visits.withLock { counts in
            counts[place, default: 0] += 1
            return counts[place]!
        }
        if visit == plan.visit { kill(getpid(), plan.signal) }
    }
}
