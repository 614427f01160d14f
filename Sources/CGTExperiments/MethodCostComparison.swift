import Foundation

/// The time per training step of every `BenchmarkMethod` on one model, next to BranchyNet's
/// (`cgt bench --compare-methods`).
///
/// The methods take turns: each round times `steps` steps of every method, and each method's
/// figure is its median round, so a neighbour that slows the machine for a while slows all of
/// them alike instead of whichever method ran then.
public struct MethodCostComparison {
    public let model: BenchmarkModel
    public let batch: Int
    public let steps: Int
    public let rounds: Int

    public init(model: BenchmarkModel, batch: Int, steps: Int, rounds: Int = 7) {
        self.model = model
        self.batch = batch
        self.steps = steps
        self.rounds = rounds
    }

    public struct Row: Codable {
        public var method: String
        public var millisecondsPerStep: Double
        /// Milliseconds per step over BranchyNet's.
        public var ratioToBranchyNet: Double
    }

    public struct Result: Codable {
        public var model: String
        public var cpu: String
        public var batch: Int
        public var steps: Int
        public var rounds: Int
        public var rows: [Row]

        public var report: String {
            let lines = rows.map {
                "\($0.method.padding(toLength: 13, withPad: " ", startingAt: 0)) \(String(format: "%8.3f", $0.millisecondsPerStep)) ms/step  \(String(format: "%.3f", $0.ratioToBranchyNet))x BranchyNet"
            }
            return """
                cpu: \(cpu)
                model: \(model); batch \(batch); median of \(rounds) rounds of \(steps) steps per method, methods in turn
                \(lines.joined(separator: "\n"))
                """
        }
    }

    public func run() throws -> Result {
        let methods = BenchmarkMethod.allCases
        let replicas = methods.map { BenchmarkReplica(model: model, batch: batch, seed: 2, method: $0) }
        for replica in replicas {
            for _ in 0..<steps { try replica.step(globalBatch: batch) }
        }
        var seconds = [[Double]](repeating: [], count: methods.count)
        for _ in 0..<rounds {
            for (m, replica) in replicas.enumerated() {
                let start = DispatchTime.now().uptimeNanoseconds
                for _ in 0..<steps { try replica.step(globalBatch: batch) }
                seconds[m].append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            }
        }
        let medians = seconds.map { $0.sorted()[$0.count / 2] * 1000 / Double(steps) }
        let reference = medians[methods.firstIndex(of: .branchyNet)!]
        return Result(
            model: model.name, cpu: TrainingBenchmark.cpuName(), batch: batch, steps: steps, rounds: rounds,
            rows: zip(methods, medians).map {
                Row(method: $0.rawValue, millisecondsPerStep: $1, ratioToBranchyNet: $1 / reference)
            })
    }
}
