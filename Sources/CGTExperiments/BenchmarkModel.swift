import CGTJob
import CGTModel
import CGTTraining

/// The network a benchmark trains: the paper's MLP or its CNN.
public enum BenchmarkModel: Sendable {
    case mlp(MLPArchitecture)
    case cnn(CNNArchitecture)

    public func build() -> EarlyExitNetwork {
        switch self {
        case .mlp(let architecture): return architecture.build()
        case .cnn(let architecture): return architecture.build()
        }
    }

    public var name: String {
        switch self {
        case .mlp: return "MLP"
        case .cnn: return "CNN"
        }
    }

    public var inputCount: Int {
        switch self {
        case .mlp(let architecture): return architecture.inputFeatures
        case .cnn(let architecture): return architecture.inputShape.reduce(1, *)
        }
    }

    public var classes: Int {
        switch self {
        case .mlp(let architecture): return architecture.classes
        case .cnn(let architecture): return architecture.classes
        }
    }
}
