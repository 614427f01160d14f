import Foundation
import Yams

/// Reads job files, applies command-line overrides, and checks the result before anything runs.
public enum JobLoader {
    /// Overrides ("optimizer.lr=0.01") from one place, named in the errors they cause: `--set`,
    /// or a grid file's parameters of a trial.
    public struct Overrides: Sendable {
        public var source: String
        public var assignments: [String]
        public init(_ assignments: [String], from source: String = "--set") {
            self.source = source
            self.assignments = assignments
        }
    }

    /// Loads the job at `path`, with `overrides` ("optimizer.lr=0.01") applied in order.
    /// - Parameter overridesSource: where `overrides` come from, named in errors they cause
    ///   (`--set`, or a grid file's parameters).
    public static func load(path: String, overrides: [String] = [], overridesSource: String = "--set") throws -> Job {
        try load(path: path, layers: [Overrides(overrides, from: overridesSource)])
    }

    /// Loads the job at `path` with each layer of overrides applied in turn (a grid trial's
    /// parameters, then the command line's `--set`).
    public static func load(path: String, layers: [Overrides]) throws -> Job {
        guard FileManager.default.fileExists(atPath: path) else {
            throw JobError(source: path, key: "", "no such job file")
        }
        return try parse(try BoundedYAML.read(path, what: "job file"), source: path, layers: layers)
    }

    /// Parses job text; `source` names it in errors, `overridesSource` errors in a key an override set.
    public static func parse(
        _ text: String, source: String, overrides: [String] = [], overridesSource: String = "--set"
    ) throws -> Job {
        try parse(text, source: source, layers: [Overrides(overrides, from: overridesSource)])
    }

    /// Parses job text with layers of overrides; an error in a key an override set names that
    /// override and where it came from.
    public static func parse(_ text: String, source: String, layers: [Overrides]) throws -> Job {
        do {
            return try decode(text, source: source, layers: layers)
        } catch let error as JobError where error.source == source {
            let key = error.key
            // The last override of a key is the one whose value the job holds.
            let set = layers.flatMap { layer in layer.assignments.map { (layer.source, $0) } }
            guard
                let (from, override) = set.last(where: { _, override in
                    let set = dottedKey(of: override)
                    return set == key || set.hasPrefix(key + ".") || key.hasPrefix(set + ".")
                })
            else { throw error }
            throw JobError(source: from, key: key, "\(error.problem) (from \(override))")
        }
    }

    /// The key an override sets, spelled as errors spell keys: "exits.weights[1]=2" sets "exits.weights.1".
    static func dottedKey(of override: String) -> String {
        String(override.prefix { $0 != "=" })
            .replacingOccurrences(of: "[", with: ".")
            .replacingOccurrences(of: "]", with: "")
    }

    private static func decode(_ text: String, source: String, layers: [Overrides]) throws -> Job {
        var root = try BoundedYAML.compose(text, source: source) ?? Node.mapping([:])
        guard root.mapping != nil else {
            throw JobError(source: source, key: "", "a job file is a mapping of sections (data, model, method, ...)")
        }
        for layer in layers {
            for override in layer.assignments { root = try apply(override, to: root, source: layer.source) }
        }
        let job: Job
        do {
            job = try YAMLDecoder().decode(Job.self, from: try Yams.serialize(node: root))
        } catch let error as DecodingError {
            // Yams wraps errors thrown inside `init(from:)` as the underlying error of `dataCorrupted`.
            if case .dataCorrupted(let context) = error, let underlying = context.underlyingError,
                let located = describe(underlying, source: source)
            {
                throw located
            }
            throw describe(error, source: source)
        } catch {
            throw describe(error, source: source) ?? error
        }
        try validate(job, source: source)
        return job
    }

    /// Sets the dotted `key` of an override "key=value"; the value is read as YAML ("[128, 128]", "0.01")
    /// within the bounds of a job file (`BoundedYAML.composeValue`). `source` names where the
    /// override came from in its errors.
    static func apply(_ override: String, to root: Node, source: String) throws -> Node {
        guard let equals = override.firstIndex(of: "="), equals != override.startIndex else {
            throw JobError(source: source, key: override, "expected key=value, for example optimizer.lr=0.01")
        }
        let path = override[..<equals].split(separator: ".").map(String.init)
        let valueText = String(override[override.index(after: equals)...])
        // Within a job file's bounds: a value is as untrusted as a file (a grid's, or a pasted one).
        let value = try BoundedYAML.composeValue(valueText, source: source, key: path) ?? Node("")
        func set(_ node: Node, _ keys: ArraySlice<String>) throws -> Node {
            guard let segment = keys.first else { return value }
            var mapping = node.mapping ?? Node.Mapping([])
            guard node.mapping != nil || node == Node("") else {
                throw JobError(
                    source: source, key: path.joined(separator: "."),
                    "'\(segment)' is inside a value that is not a section")
            }
            // "weights[1]" sets one element of an existing list.
            if segment.hasSuffix("]"), let open = segment.firstIndex(of: "["),
                let index = Int(segment[segment.index(after: open)..<segment.index(before: segment.endIndex)])
            {
                let key = String(segment[..<open])
                guard var list = mapping[key]?.sequence, index >= 0, index < list.count else {
                    throw JobError(
                        source: source, key: path.joined(separator: "."),
                        "'\(key)' is not a list with an element \(index)")
                }
                list[index] = try set(list[index], keys.dropFirst())
                mapping[key] = .sequence(list)
                return .mapping(mapping)
            }
            mapping[segment] = try set(mapping[segment] ?? Node.mapping([:]), keys.dropFirst())
            return .mapping(mapping)
        }
        return try set(root, path[...])
    }

    /// The job error for an unknown key, an unknown name or a refused option raised inside a
    /// section's decoding.
    static func describe(_ error: Error, source: String) -> JobError? {
        switch error {
        case let unknown as UnknownKeyError:
            let hint = unknown.suggestion.map { " (did you mean '\($0)'?)" } ?? ""
            return JobError(source: source, key: unknown.path.joined(separator: "."), "unknown key\(hint)")
        case let invalid as InvalidValueError:
            return JobError(source: source, key: invalid.path.joined(separator: "."), invalid.problem)
        default:
            return nil
        }
    }

    static func describe(_ error: DecodingError, source: String) -> JobError {
        func path(_ context: DecodingError.Context) -> String {
            context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .typeMismatch(let type, let context):
            return JobError(source: source, key: path(context), "expected \(typeName(type))")
        case .valueNotFound(let type, let context):
            // Yams reports a scalar it cannot convert (a word, a number out of range) this way.
            return JobError(source: source, key: path(context), "expected \(typeName(type))")
        case .keyNotFound(let key, let context):
            return JobError(source: source, key: path(context), "missing key '\(key.stringValue)'")
        case .dataCorrupted(let context):
            return JobError(source: source, key: path(context), context.debugDescription)
        @unknown default:
            return JobError(source: source, key: "", "\(error)")
        }
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is Float.Type, is Double.Type: return "a number"
        case is Int.Type: return "a whole number"
        case is UInt64.Type: return "a whole number from 0 to 18446744073709551615"
        case is Bool.Type: return "true or false"
        case is String.Type: return "a string"
        case is [Int].Type, is [Float].Type: return "a list of numbers"
        default: return "a single value, not a list or section"
        }
    }

    /// Checks values that decode but cannot run, naming the key.
    public static func validate(_ job: Job, source: String) throws {
        func fail(_ key: String, _ problem: String) -> JobError { JobError(source: source, key: key, problem) }
        // The name becomes the default run folder runs/<name>: it must stay inside runs/.
        let parts = job.name.split(separator: "/", omittingEmptySubsequences: false)
        guard !job.name.hasPrefix("/"), parts.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." && $0.count <= 255 }),
            job.name.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F })
        else {
            throw fail(
                "name",
                "'\(job.name)' is not a relative folder name (no '..', '.', empty parts, leading '/' or control characters)"
            )
        }
        let m = job.model
        switch m.kind {
        case .mlp:
            guard !m.hidden.isEmpty, m.hidden.allSatisfy({ $0 > 0 && $0 <= 1 << 16 }) else {
                throw fail("model.hidden", "needs one or more widths in [1, 65536]")
            }
        case .cnn:
            guard !m.channels.isEmpty, m.channels.allSatisfy({ $0 > 0 && $0 <= 1 << 14 }) else {
                throw fail("model.channels", "needs one or more channel counts in [1, 16384]")
            }
            guard m.kernelSize >= 1 && m.kernelSize % 2 == 1 && m.kernelSize <= 15 else {
                throw fail("model.kernel_size", "must be odd, in [1, 15]")
            }
        case .resnet:
            guard !m.channels.isEmpty, m.channels.allSatisfy({ $0 > 0 && $0 <= 1 << 14 }) else {
                throw fail("model.channels", "needs one or more stage channel counts in [1, 16384]")
            }
            guard m.kernelSize >= 1 && m.kernelSize % 2 == 1 && m.kernelSize <= 15 else {
                throw fail("model.kernel_size", "must be odd, in [1, 15]")
            }
            guard m.stemChannels > 0 && m.stemChannels <= 1 << 14 else {
                throw fail("model.stem_channels", "must be in [1, 16384]")
            }
            guard m.blocksPerStage >= 1 && m.blocksPerStage <= 64 else {
                throw fail("model.blocks_per_stage", "must be in [1, 64]")
            }
            guard m.batchnorm else {
                throw fail("model.batchnorm", "resnet's residual blocks always have BatchNorm; it cannot be false")
            }
        }
        guard !m.exits.isEmpty, zip(m.exits, m.exits.dropFirst()).allSatisfy({ $0 < $1 }), m.exits.first! >= 1 else {
            throw fail("model.exits", "needs increasing 1-based layer numbers, got \(m.exits)")
        }
        guard m.exits.last == m.blockCount else {
            throw fail("model.exits", "the last exit must follow the last block (\(m.blockCount)), got \(m.exits)")
        }
        guard m.dropout >= 0 && m.dropout < 1 else {
            throw fail("model.dropout", "must be in [0, 1), got \(m.dropout)")
        }
        guard job.augmentation.cropPadding >= 0 && job.augmentation.cropPadding <= 64 else {
            throw fail("augmentation.crop_padding", "must be in [0, 64]")
        }
        try validateMethod(job, fail: fail)
        let t = job.training
        // Upper bounds keep step counts and buffer sizes far from overflow.
        guard t.epochs >= 1 && t.epochs <= 1_000_000 else { throw fail("training.epochs", "must be in [1, 1000000]") }
        guard t.labelSmoothing >= 0 && t.labelSmoothing < 1 else {
            throw fail("training.label_smoothing", "must be in [0, 1)")
        }
        guard t.batchSize >= 2 && t.batchSize <= 1 << 24 else {
            throw fail("training.batch_size", "must be in [2, 16777216] (BatchNorm needs two samples)")
        }
        guard t.checkpointEvery >= 1 else { throw fail("training.checkpoint_every", "must be at least 1") }
        let o = job.optimizer
        guard o.lr > 0 && o.lr.isFinite else { throw fail("optimizer.lr", "must be positive, got \(o.lr)") }
        guard o.weightDecay >= 0 else { throw fail("optimizer.weight_decay", "must not be negative") }
        guard o.betas.count == 2, o.betas.allSatisfy({ $0 >= 0 && $0 < 1 }) else {
            throw fail("optimizer.betas", "needs two values in [0, 1), got \(o.betas)")
        }
        guard o.momentum >= 0 && o.momentum < 1 else { throw fail("optimizer.momentum", "must be in [0, 1)") }
        let s = job.schedule
        guard s.warmupEpochs >= 0 && s.warmupEpochs <= Double(t.epochs) else {
            throw fail("schedule.warmup_epochs", "must be in [0, training.epochs]")
        }
        guard s.stepSize >= 1 && s.stepSize <= 1_000_000 else {
            throw fail("schedule.step_size", "must be in [1, 1000000]")
        }
        guard s.gamma > 0 && s.gamma.isFinite else { throw fail("schedule.gamma", "must be positive") }
        guard s.minLr >= 0 && s.minLr <= job.optimizer.lr else {
            throw fail("schedule.min_lr", "must be in [0, optimizer.lr]")
        }
        guard job.eval.tau > 0 && job.eval.tau <= 1 else { throw fail("eval.tau", "must be in (0, 1]") }
        guard job.eval.batchSize >= 1 && job.eval.batchSize <= 1 << 24 else {
            throw fail("eval.batch_size", "must be in [1, 16777216]")
        }
        guard job.eval.bnRecalibrationBatches >= 1 && job.eval.bnRecalibrationBatches <= 1 << 20 else {
            throw fail("eval.bn_recalibration_batches", "must be in [1, 1048576]")
        }
        guard job.eval.everyEpochs >= 0 else { throw fail("eval.every_epochs", "must not be negative") }
        try validateRegime(job, fail: fail)
        guard job.runtime.blasThreads >= 1 && job.runtime.blasThreads <= 1024 else {
            throw fail("runtime.blas_threads", "must be in [1, 1024]")
        }
        guard job.runtime.bucketKib >= 1 && job.runtime.bucketKib <= 1 << 20 else {
            throw fail("runtime.bucket_kib", "must be in [1, 1048576]")
        }
        guard job.runtime.stallShutdownSeconds >= 0 && job.runtime.stallShutdownSeconds.isFinite else {
            throw fail("runtime.stall_shutdown_seconds", "must be 0 (never) or a number of seconds")
        }
        guard job.runtime.stallWarningSeconds > 0 else {
            throw fail("runtime.stall_warning_seconds", "must be positive")
        }
    }

    /// Checks the method's values against the model's exits and the epochs; which options the
    /// method takes was settled when it was decoded (`MethodChoice`).
    static func validateMethod(_ job: Job, fail: (String, String) -> JobError) throws {
        let m = job.method
        let exits = job.model.exits.count
        let epochs = job.training.epochs
        guard m.tau > 0 && m.tau < 1 else { throw fail("method.tau", "must be in (0, 1), got \(m.tau)") }
        func checkWeights(_ weights: [Float]) throws {
            guard weights.count == exits, weights.allSatisfy({ $0 >= 0 && $0.isFinite }) else {
                throw fail("method.weights", "needs \(exits) non-negative weights (one per exit), got \(weights)")
            }
        }
        func checkSpread(_ spread: Float?) throws {
            guard let spread else { return }
            guard spread >= 0 && spread.isFinite else { throw fail("method.spread", "must be a finite number >= 0") }
        }
        switch m.choice {
        case .hardCGT(let spread):
            try checkSpread(spread)
        case .softCGT(let sharpness, _, let spread):
            guard sharpness > 0 else { throw fail("method.sharpness", "must be positive, got \(sharpness)") }
            try checkSpread(spread)
        case .branchyNet(let weights):
            try checkWeights(weights)
        case .cascadeOptimization(let stages?):
            guard stages.count == exits, stages.allSatisfy({ $0 >= 1 }), stages.reduce(0, +) == epochs else {
                throw fail(
                    "method.stage_epochs",
                    "needs \(exits) positive epoch counts (one per exit) summing to training.epochs (\(epochs)), got \(stages)"
                )
            }
        case .cascadeOptimization(nil):
            guard epochs >= exits else {
                throw fail("training.epochs", "co trains one stage per exit: needs at least \(exits) epochs")
            }
        case .classyNet(let weights, .given(let groups)):
            try checkWeights(weights)
            guard groups.count == exits - 1, groups.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0 >= 0 } }) else {
                throw fail(
                    "method.class_groups",
                    "needs \(exits - 1) non-empty lists of class indices (one per exit but the last), got \(groups)")
            }
        case .classyNet(let weights, .chosen(let size, let grouping)):
            try checkWeights(weights)
            if let size, size < 1 { throw fail("method.group_size", "must be at least 1") }
            if let grouping {
                guard grouping >= 1 && grouping < epochs else {
                    throw fail("method.grouping_epochs", "must be in [1, training.epochs - 1]")
                }
            } else if epochs < 2 {
                throw fail(
                    "training.epochs", "classynet chooses its groups after a first epoch: needs at least 2 epochs")
            }
        case .l2w(let spread, let network):
            try checkSpread(spread)
            guard network.hidden >= 1 && network.hidden <= 4096 else {
                throw fail("method.l2w.hidden", "must be in [1, 4096]")
            }
            guard network.metaLr > 0 && network.metaLr.isFinite else {
                throw fail("method.l2w.meta_lr", "must be a finite number > 0")
            }
            guard network.metaInterval >= 1 else { throw fail("method.l2w.meta_interval", "must be at least 1") }
            guard network.finiteDifferenceStep > 0 && network.finiteDifferenceStep.isFinite else {
                throw fail("method.l2w.finite_difference_step", "must be a finite number > 0")
            }
        }
        if let anneal = m.anneal {
            guard anneal.from.count == exits, anneal.to.count == exits,
                (anneal.from + anneal.to).allSatisfy({ $0 >= 0 && $0.isFinite })
            else {
                throw fail("method.anneal", "from and to need \(exits) non-negative factors each")
            }
            guard anneal.epochs >= 1 else { throw fail("method.anneal.epochs", "must be at least 1") }
        }
        guard m.leak >= 0 && m.leak.isFinite else { throw fail("method.leak", "must be a finite number >= 0") }
        if let d = m.distillation {
            guard d.weight >= 0 && d.weight.isFinite else {
                throw fail("method.distillation.weight", "must be a finite number >= 0")
            }
            guard d.temperature > 0 && d.temperature.isFinite else {
                throw fail("method.distillation.temperature", "must be a finite number > 0")
            }
        }
    }

    static func validateRegime(_ job: Job, fail: (String, String) -> JobError) throws {
        let t = job.training
        let exits = job.model.exits.count
        // L2W's network reads a loss at every exit on every step of one joint phase.
        if case .l2w = job.method.choice {
            guard t.regime == .joint else {
                throw fail("training.regime", "l2w weighs every exit in one joint phase; use regime joint")
            }
            guard t.exitStartEpochs == nil else {
                throw fail("training.exit_start_epochs", "l2w weighs every exit from the start")
            }
        }
        if t.regime != .joint {
            guard !job.method.choice.trainsInStages else {
                throw fail("training.regime", "co has its own stages; use regime joint")
            }
            guard t.epochs >= 2 else {
                throw fail("training.epochs", "\(t.regime) trains in two phases: needs at least 2 epochs")
            }
            if let backbone = t.backboneEpochs, backbone < 1 || backbone >= t.epochs {
                throw fail("training.backbone_epochs", "must be in [1, training.epochs - 1]")
            }
        } else if t.backboneEpochs != nil {
            throw fail("training.backbone_epochs", "only the disjoint and mixed regimes have a backbone phase")
        }
        if let starts = t.exitStartEpochs {
            guard t.regime == .joint && !job.method.choice.trainsInStages else {
                throw fail(
                    "training.exit_start_epochs", "progressive activation needs regime joint and a method other than co"
                )
            }
            guard starts.count == exits, starts.first == 0, zip(starts, starts.dropFirst()).allSatisfy({ $0 <= $1 }),
                starts.allSatisfy({ $0 < t.epochs })
            else {
                throw fail(
                    "training.exit_start_epochs",
                    "needs \(exits) non-decreasing epochs starting at 0 and below training.epochs, got \(starts)")
            }
        }
    }

    /// The resolved job as YAML, every default written out.
    public static func yaml(_ job: Job) throws -> String {
        let text = try YAMLEncoder().encode(job)
        guard let root = try Yams.compose(yaml: text) else { return text }
        // Yams writes every number in exponent form ("2e-1"); a person reads "0.2".
        func plain(_ node: Node) -> Node {
            switch node {
            case .scalar(var scalar):
                if scalar.style == .plain, scalar.string.contains("e"), let number = Double(scalar.string) {
                    scalar.string = "\(number)"
                }
                return .scalar(scalar)
            case .mapping(var mapping):
                for (key, value) in mapping { mapping[key] = plain(value) }
                return .mapping(mapping)
            case .sequence(var sequence):
                sequence = Node.Sequence(sequence.map(plain), sequence.tag, sequence.style, sequence.mark)
                return .sequence(sequence)
            default:
                return node
            }
        }
        return try Yams.serialize(node: plain(root))
    }

    /// The keys whose values differ between two jobs, each as "key: a -> b" (lists as one
    /// value), sorted: what a refused `--resume` names.
    public static func differences(from a: Job, to b: Job) throws -> [String] {
        func flattened(_ job: Job) throws -> [String: String] {
            var values: [String: String] = [:]
            func walk(_ node: Node, _ key: String) {
                if let mapping = node.mapping {
                    for (name, child) in mapping {
                        walk(child, key.isEmpty ? name.string ?? "" : "\(key).\(name.string ?? "")")
                    }
                } else {
                    values[key] =
                        node.scalar?.string ?? (try? Yams.serialize(node: node))?.trimmingCharacters(
                            in: .whitespacesAndNewlines
                        )
                        .replacingOccurrences(of: "\n", with: " ") ?? ""
                }
            }
            if let root = try Yams.compose(yaml: try yaml(job)) { walk(root, "") }
            return values
        }
        let (x, y) = (try flattened(a), try flattened(b))
        return Set(x.keys).union(y.keys).sorted().compactMap { key in
            x[key] == y[key] ? nil : "\(key): \(x[key] ?? "absent") -> \(y[key] ?? "absent")"
        }
    }
}
