import CGTKernels
import CGTTestSupport
import Foundation
import XCTest

@testable import CGTModel

/// The options that couple the exits (`method.distillation`, `method.gradient_equilibrium`,
/// `method.boosting`) against finite differences of losses written out here in Double.
final class ExitCouplingGradientTests: XCTestCase {
    private let lambdas: [Float] = [0.5, 0.3, 0.2]
    private let h: Float = 5e-3

    /// Picks the first input whose ReLU inputs lie at least 3 h from 0, with labels i mod 4.
    private func prepare(_ fixture: GradientFixture) {
        for seed in UInt64(3000)..<UInt64(4000) {
            let candidate = Fixtures.normals(fixture.batch * 6, seed: seed)
            guard fixture.preActivations(candidate).map(abs).min()! > Double(3 * h) else { continue }
            fixture.input = candidate
            fixture.labels = (0..<fixture.batch).map { Int32($0 % 4) }
            return
        }
        XCTFail("no input keeps every ReLU input away from 0")
    }

    /// Finite differences of `loss` over the parameters in `range`; nil if a step moved a ReLU
    /// input across 0 (the loss is then not smooth there).
    private func numericGradient(_ fixture: GradientFixture, range: Range<Int>, loss: () -> Double) -> [Double]? {
        let pattern = fixture.preActivations(fixture.input).map { $0 > 0 }
        var crossings = 0
        let values = UnsafeMutableBufferPointer(rebasing: fixture.network.store.parameters[range])
        let numeric = FiniteDifference.gradient(of: values, step: h) {
            if fixture.preActivations(fixture.input).map({ $0 > 0 }) != pattern { crossings += 1 }
            return loss()
        }
        return crossings == 0 ? numeric : nil
    }

    /// sum_i lambda_e CE(logits_e(i)) / batch for each exit, after a forward pass of the input.
    private func exitLosses(_ fixture: GradientFixture, logits: (Int) -> [Float]) -> [Double] {
        fixture.forward(fixture.input)
        return (0..<fixture.network.exitCount).map { e in
            let z = logits(e)
            let sum = (0..<fixture.batch).reduce(0.0) { total, i in
                total + referenceCrossEntropy(z[(i * 4)..<(i * 4 + 4)], label: Int(fixture.labels[i]))
            }
            return Double(lambdas[e]) * sum / Double(fixture.batch)
        }
    }

    /// T^2 KL(q || softmax(z / T)) of one row, in Double.
    private func referenceDistillation(_ z: ArraySlice<Float>, teacher q: [Double], temperature t: Double) -> Double {
        let p = referenceSoftmax(z.map { Float(Double($0) / t) }, classes: z.count)[0]
        return t * t * zip(q, p).reduce(0.0) { $0 + ($1.0 > 0 ? $1.0 * Foundation.log($1.0 / $1.1) : 0) }
    }

    /// BYOT's term: the shallow exits' gradients include alpha T (p - q) / N, the teacher's do
    /// not (q is held fixed), and the weighted loss statistics include alpha T^2 KL.
    func testSelfDistillationGradient() {
        let fixture = GradientFixture(dropout: 0.2)
        prepare(fixture)
        let (alpha, t): (Double, Double) = (0.7, 2.5)
        fixture.objective.distillation = .init(weight: Float(alpha), temperature: Float(t))
        defer { fixture.objective.distillation = nil }
        fixture.forward(fixture.input)
        let teacherLogits = fixture.logits(2)
        let teacher = referenceSoftmax(teacherLogits.map { Float(Double($0) / t) }, classes: 4)
        func distillation(_ e: Int) -> Double {
            let z = fixture.logits(e)
            return (0..<fixture.batch).reduce(0.0) {
                $0 + referenceDistillation(z[($1 * 4)..<($1 * 4 + 4)], teacher: teacher[$1], temperature: t)
            }
        }
        let all = 0..<fixture.network.store.parameterCount
        guard
            let numeric = numericGradient(
                fixture, range: all,
                loss: {
                    let ce = exitLosses(fixture) { fixture.logits($0) }.reduce(0, +)
                    return ce + alpha * (distillation(0) + distillation(1)) / Double(fixture.batch)
                })
        else { return XCTFail("a finite-difference step crossed a ReLU kink") }
        let (statistics, analytic) = fixture.analyticGradient(
            weighting: FixedExitWeights(lambdas), globalBatch: fixture.batch)
        assertGradientMatches(analytic, numeric, "self-distillation network gradient")
        fixture.forward(fixture.input)
        for e in 0..<2 {
            let ce = exitLosses(fixture) { fixture.logits($0) }[e] * Double(fixture.batch)
            XCTAssertEqual(statistics.weightedLoss[e], ce + alpha * distillation(e), accuracy: 1e-4, "exit \(e)")
        }
        // The teacher's head learns only its cross-entropy: the same gradient as without the term.
        let teacherHead = fixture.network.exitParameterRange(2)!
        fixture.objective.distillation = nil
        let (_, plain) = fixture.analyticGradient(weighting: FixedExitWeights(lambdas), globalBatch: fixture.batch)
        XCTAssertEqual(Array(analytic[teacherHead]), Array(plain[teacherHead]))
        XCTAssertNotEqual(
            Array(analytic[fixture.network.exitParameterRange(0)!]),
            Array(plain[fixture.network.exitParameterRange(0)!]))
    }

    /// IMTA's gradient equilibrium: block b's parameters follow the mean of the losses of the
    /// exits at or after it, (sum_{e >= e0(b)} L_e) / (K - e0(b)); each head its own loss.
    func testGradientEquilibriumFollowsTheMeanOfTheLaterLosses() {
        for (widths, exitsAfter) in [([8, 8, 8], [1, 2, 3]), ([8, 7, 9, 5], [2, 4])] {
            let fixture = GradientFixture(dropout: 0.2, hiddenWidths: widths, exitsAfter: exitsAfter)
            prepare(fixture)
            let network = fixture.network
            let k = network.exitCount
            let (_, analytic) = fixture.analyticGradient(
                weighting: FixedExitWeights(lambdas), globalBatch: fixture.batch, gradientEquilibrium: true)
            let (_, plain) = fixture.analyticGradient(weighting: FixedExitWeights(lambdas), globalBatch: fixture.batch)
            XCTAssertNotEqual(analytic, plain, "equilibrium changes the trunk's gradient")
            for b in network.blocks.indices {
                let first = network.exitBlocks.firstIndex { $0 >= b }!
                guard
                    let numeric = numericGradient(
                        fixture, range: network.blockParameterRange(b)!,
                        loss: {
                            exitLosses(fixture) { fixture.logits($0) }[first...].reduce(0, +) / Double(k - first)
                        })
                else { return XCTFail("a finite-difference step crossed a ReLU kink") }
                assertGradientMatches(
                    Array(analytic[network.blockParameterRange(b)!]), numeric, relativeFloor: 3e-2,
                    "\(widths) block \(b) under gradient equilibrium")
            }
            for e in 0..<k {
                let range = network.exitParameterRange(e)!
                XCTAssertEqual(Array(analytic[range]), Array(plain[range]), "head \(e) learns its own loss unchanged")
            }
        }
    }

    /// BoostNet: exit e's logits are the sum of heads 0...e; its loss reaches head e and the
    /// trunk through head e alone, the earlier heads' outputs held at their values.
    func testBoostedExitsGradient() {
        let fixture = GradientFixture(dropout: 0.2)
        prepare(fixture)
        let network = fixture.network
        network.exitCombination = .boosted
        defer { network.exitCombination = .independent }
        fixture.forward(fixture.input)
        let heads = (0..<3).map { Array(network.exits[$0].output(batch: fixture.batch)) }
        for e in 0..<3 {
            let sum = (0...e).map { heads[$0] }.reduce([Float](repeating: 0, count: heads[0].count)) {
                zip($0, $1).map(+)
            }
            assertAllClose(fixture.logits(e), sum, relative: 1e-6, absolute: 1e-6, "exit \(e)'s logits sum the heads")
        }
        let all = 0..<network.store.parameterCount
        guard
            let numeric = numericGradient(
                fixture, range: all,
                loss: {
                    exitLosses(fixture) { e in
                        let own = Array(network.exits[e].output(batch: fixture.batch))
                        return (0..<e).reduce(own) { zip($0, heads[$1]).map(+) }
                    }.reduce(0, +)
                })
        else { return XCTFail("a finite-difference step crossed a ReLU kink") }
        let (_, analytic) = fixture.analyticGradient(weighting: FixedExitWeights(lambdas), globalBatch: fixture.batch)
        assertGradientMatches(analytic, numeric, "boosted network gradient")
        for slot in network.store.parameterSlots
        where !(slot.name.hasPrefix("blocks") && slot.name.hasSuffix("linear.bias")) {
            let range = slot.offset..<(slot.offset + slot.count)
            assertGradientMatches(
                Array(analytic[range]), Array(numeric[range]), relativeFloor: 3e-2, "boosted \(slot.name)")
        }
    }
}
