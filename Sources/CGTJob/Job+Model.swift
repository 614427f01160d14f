import CGTData
import CGTFiles
import CGTModel

extension Job {
    /// The exit weighting the job's method names.
    public func makeExitWeighting() -> ExitWeighting {
        switch method.choice {
        case .hardCGT: return HardCGT(tau: method.tau)
        case .softCGT(let sharpness, let score, _): return SoftCGT(tau: method.tau, sharpness: sharpness, score: score)
        case .branchyNet(let weights), .classyNet(let weights, _): return FixedExitWeights(weights)
        case .l2w(_, let network): return makeWeightNetwork(network)
        // Each stage of Cascade Optimization trains one exit (`trainingPhases` gives its weights).
        case .cascadeOptimization: return FixedExitWeights(Array(repeating: 1, count: model.exits.count))
        }
    }

    /// L2W's weight prediction network as `settings` describe it, initialised from the job's seed.
    public func makeWeightNetwork(_ settings: L2WSection) -> LearnedExitWeights {
        LearnedExitWeights(exits: model.exits.count, hiddenWidth: settings.hidden, seed: training.seed)
    }

    /// Checks that samples of `featureShape` suit the model: the MLP flattens anything, the CNN
    /// and the ResNet need `[channels, height, width]` images at least as large as their
    /// pooling halves them (the CNN pools after every block, the ResNet before every stage but
    /// the first).
    public func checkInput(featureShape: [Int], source: String) throws {
        let pools: Int
        switch model.kind {
        case .mlp: return
        case .cnn: pools = model.channels.count
        case .resnet: pools = model.channels.count - 1
        }
        guard featureShape.count == 3 else {
            throw JobError(
                source: source, key: "model.kind",
                "\(model.kind) needs images [channels, height, width], the data has feature_shape \(featureShape)")
        }
        let smallest = 1 << pools
        guard featureShape[1] >= smallest && featureShape[2] >= smallest else {
            throw JobError(
                source: source, key: "model.channels",
                "\(pools) pooling steps need images of at least \(smallest)x\(smallest), the data has \(featureShape)"
            )
        }
    }

    /// The network the job's model section describes, for samples of `featureShape`, with its
    /// exits boosted if the method says so.
    public func makeNetwork(featureShape: [Int], classes: Int) -> EarlyExitNetwork {
        let network = makeBackbone(featureShape: featureShape, classes: classes)
        if method.boosting { network.exitCombination = .boosted }
        return network
    }

    private func makeBackbone(featureShape: [Int], classes: Int) -> EarlyExitNetwork {
        let otherOutput = method.choice.groupsClasses
        switch model.kind {
        case .cnn:
            var architecture = CNNArchitecture(
                inputShape: featureShape, channels: model.channels, exitsAfter: model.exits, classes: classes,
                kernelSize: model.kernelSize, batchNorm: model.batchnorm)
            architecture.otherOutput = otherOutput
            return architecture.build()
        case .resnet:
            var architecture = ResNetArchitecture(
                inputShape: featureShape, stemChannels: model.stemChannels, channels: model.channels,
                blocksPerStage: model.blocksPerStage, exitsAfter: model.exits, classes: classes,
                kernelSize: model.kernelSize)
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
        guard case .classyNet(_, .given(let groups)) = method.choice else { return nil }
        if let bad = groups.joined().first(where: { $0 >= classes }) {
            throw JobError(
                source: source, key: "method.class_groups",
                "class \(bad) does not exist: the data has \(classes) classes (0-\(classes - 1))")
        }
        return ClassGroups(classes: classes, groups: groups.map { Optional($0) } + [nil])
    }

    /// ClassyNet choosing its groups from the data of `classes` classes: classes per shallow exit
    /// (`method.group_size`, default ceil(classes / exits)) and the epochs of ordinary training
    /// before (`method.grouping_epochs`, default a tenth of the epochs, at least 1). Nil when the
    /// job gives the groups or trains another method.
    public func classGroupChoice(classes: Int) -> (groupSize: Int, groupingEpochs: Int)? {
        switch method.choice {
        case .classyNet(_, .chosen(let groupSize, let groupingEpochs)):
            let exits = model.exits.count
            return (groupSize ?? (classes + exits - 1) / exits, groupingEpochs ?? max(1, training.epochs / 10))
        case .classyNet(_, .given), .hardCGT, .softCGT, .branchyNet, .cascadeOptimization, .l2w:
            return nil
        }
    }

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

extension Job {
    /// An upper estimate of the network's size for samples of `featureShape`, made without
    /// building it: parameter count and activation values kept per sample (forward outputs,
    /// BatchNorm and dropout caches, gradients), so that a job too large for the machine is
    /// refused before anything is allocated.
    public func estimatedModelSize(featureShape: [Int], classes: Int) -> (
        parameters: Double, activationsPerSample: Double
    ) {
        let outputs = Double(classes + 1)
        var parameters = 0.0
        var activations = 0.0
        switch model.kind {
        case .mlp:
            var width = featureShape.reduce(1.0) { $0 * Double($1) }
            for hidden in model.hidden.map(Double.init) {
                parameters += width * hidden + 5 * hidden
                activations += 5 * hidden
                width = hidden
            }
            for exit in model.exits { parameters += (Double(model.hidden[exit - 1]) + 1) * outputs }
        case .cnn:
            guard featureShape.count == 3 else { return (0, 0) }
            var (channels, height, width) = (Double(featureShape[0]), Double(featureShape[1]), Double(featureShape[2]))
            let kernel = Double(model.kernelSize * model.kernelSize)
            for block in model.channels.map(Double.init) {
                parameters += channels * block * kernel + 5 * block
                activations += 6 * block * height * width
                (channels, height, width) = (block, (height / 2).rounded(.down), (width / 2).rounded(.down))
            }
            for exit in model.exits { parameters += (Double(model.channels[exit - 1]) + 1) * outputs }
        case .resnet:
            guard featureShape.count == 3 else { return (0, 0) }
            let kernel = Double(model.kernelSize * model.kernelSize)
            var (height, width) = (Double(featureShape[1]), Double(featureShape[2]))
            var channels = Double(model.stemChannels)
            // The stem: conv and BatchNorm weights; its output, BatchNorm cache and gradient.
            parameters += Double(featureShape[0]) * channels * kernel + 5 * channels
            activations += 6 * channels * height * width
            for (s, stage) in model.channels.map(Double.init).enumerated() {
                if s > 0 {
                    activations += 3 * channels * height * width  // the pool's output, argmax and gradient
                    (height, width) = ((height / 2).rounded(.down), (width / 2).rounded(.down))
                }
                for _ in 0..<model.blocksPerStage {
                    // Two convolutions and BatchNorms, and a projection where the channels change;
                    // a block keeps about 14 maps per sample (outputs, caches, gradients, scratch).
                    parameters += (channels + stage) * stage * kernel + 10 * stage
                    if channels != stage { parameters += channels * stage + 5 * stage }
                    activations += 14 * stage * height * width + 2 * channels * height * width
                    channels = stage
                }
            }
            for exit in model.exits { parameters += (Double(model.channels[exit - 1]) + 1) * outputs }
        }
        return (
            parameters,
            activations + featureShape.reduce(1.0) { $0 * Double($1) } + Double(model.exits.count) * outputs * 3
        )
    }

    /// Nil when the network and `batch` samples of activations fit `MemoryBudget`, else why
    /// not; `training` counts gradients and two optimizer moments besides the parameters.
    public func modelSizeRefusal(featureShape: [Int], classes: Int, batch: Int, training: Bool) -> String? {
        let (parameters, activations) = estimatedModelSize(featureShape: featureShape, classes: classes)
        let floats = parameters * (training ? 4 : 1) + activations * Double(batch)
        let bytes = floats * Double(MemoryLayout<Float>.size)
        guard bytes > Double(MemoryBudget.bytes) else { return nil }
        return
            "the network (about \(String(format: "%.3g", parameters)) parameters) with a batch of \(batch) needs about \(MemoryBudget.describe(Int(min(bytes, 9e18)))), more than the memory limit of \(MemoryBudget.describe(MemoryBudget.bytes)) (CGT_MEMORY_LIMIT)"
    }
}
