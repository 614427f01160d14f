import CGTData
import CGTModel

extension Job {
    /// The exit weighting the job's method names.
    public func makeExitWeighting() -> ExitWeighting {
        switch method.name {
        case .hardCGT: return HardCGT(tau: method.tau)
        case .softCGT: return SoftCGT(tau: method.tau, sharpness: method.sharpness, score: method.score)
        case .branchyNet, .classyNet: return FixedExitWeights(method.weights ?? [])
        // Each stage of Cascade Optimization trains one exit (`trainingPhases` gives its weights).
        case .cascadeOptimization: return FixedExitWeights(Array(repeating: 1, count: model.exits.count))
        }
    }

    /// Checks that samples of `featureShape` suit the model: the MLP flattens anything, the CNN
    /// needs `[channels, height, width]` images at least as large as its pooling halves them.
    public func checkInput(featureShape: [Int], source: String) throws {
        guard model.kind == .cnn else { return }
        guard featureShape.count == 3 else {
            throw JobError(
                source: source, key: "model.kind",
                "cnn needs images [channels, height, width], the data has feature_shape \(featureShape)")
        }
        let smallest = 1 << model.channels.count
        guard featureShape[1] >= smallest && featureShape[2] >= smallest else {
            throw JobError(
                source: source, key: "model.channels",
                "\(model.channels.count) pooling blocks need images of at least \(smallest)x\(smallest), the data has \(featureShape)"
            )
        }
    }

    /// The network the job's model section describes, for samples of `featureShape`.
    public func makeNetwork(featureShape: [Int], classes: Int) -> EarlyExitNetwork {
        let otherOutput = method.name.groupsClasses
        switch model.kind {
        case .cnn:
            var architecture = CNNArchitecture(
                inputShape: featureShape, channels: model.channels, exitsAfter: model.exits, classes: classes,
                kernelSize: model.kernelSize, batchNorm: model.batchnorm)
            architecture.otherOutput = otherOutput
            return architecture.build()
        case .mlp:
            var architecture = MLPArchitecture(
                inputFeatures: featureShape.reduce(1, *), hiddenWidths: model.hidden, exitsAfter: model.exits,
                classes: classes, batchNorm: model.batchnorm, dropout: model.dropout)
            architecture.otherOutput = otherOutput
            return architecture.build()
        }
    }

    /// ClassyNet's groups as the job gives them (`method.class_groups`), checked against the data.
    public func givenClassGroups(classes: Int, source: String) throws -> ClassGroups? {
        guard method.name.groupsClasses, let groups = method.classGroups else { return nil }
        if let bad = groups.joined().first(where: { $0 >= classes }) {
            throw JobError(
                source: source, key: "method.class_groups",
                "class \(bad) does not exist: the data has \(classes) classes (0-\(classes - 1))")
        }
        return ClassGroups(classes: classes, groups: groups.map { Optional($0) } + [nil])
    }

    /// ClassyNet: the epoch after which the groups are chosen from the data.
    public var groupingEpochs: Int { method.groupingEpochs ?? max(1, training.epochs / 10) }

    /// The optimizer the job names, with zeroed state.
    public func makeOptimizer(parameterCount: Int) -> Optimizer {
        switch optimizer.name {
        case .sgd:
            return SGD(
                parameterCount: parameterCount, momentum: optimizer.momentum, weightDecay: optimizer.weightDecay,
                nesterov: optimizer.nesterov)
        case .adam, .adamw:
            return Adam(
                parameterCount: parameterCount, beta1: optimizer.betas[0], beta2: optimizer.betas[1],
                epsilon: optimizer.eps,
                weightDecay: optimizer.weightDecay, decoupled: optimizer.name == .adamw)
        }
    }
}
