import CGTJob
import CGTModel
import CGTTraining

/// The network a benchmark trains: the paper's MLP, its CNN, or the residual backbone.
public enum BenchmarkModel: Sendable {
    case mlp(MLPArchitecture)
    case cnn(CNNArchitecture)
    case resnet(ResNetArchitecture)

    public func build() -> EarlyExitNetwork {
        switch self {
        case .mlp(let architecture): return architecture.build()
        case .cnn(let architecture): return architecture.build()
        case .resnet(let architecture): return architecture.build()
        }
    }

    public var name: String {
        switch self {
        case .mlp: return "MLP"
        case .cnn: return "CNN"
        case .resnet: return "ResNet"
        }
    }

    public var inputCount: Int {
        switch self {
        case .mlp(let architecture): return architecture.inputFeatures
        case .cnn(let architecture): return architecture.inputShape.reduce(1, *)
        case .resnet(let architecture): return architecture.inputShape.reduce(1, *)
        }
    }

    public var classes: Int {
        switch self {
        case .mlp(let architecture): return architecture.classes
        case .cnn(let architecture): return architecture.classes
        case .resnet(let architecture): return architecture.classes
        }
    }
}
