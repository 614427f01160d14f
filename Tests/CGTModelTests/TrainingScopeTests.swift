import CGTKernels
import CGTTestSupport
import Foundation
import XCTest

@testable import CGTModel

/// Training parts of a network: gradients with a scope against finite differences, frozen
/// blocks in inference mode, the ranges an optimizer may update.
final class TrainingScopeTests: XCTestCase {
    /// Sum over the active exits of lambda_e * CE_e, divided by the batch, in Double.
    private func scopedLoss(_ fixture: GradientFixture, scope: TrainingScope, lambdas: [Float]) -> Double {
        fixture.input.withUnsafeBufferPointer {
            fixture.network.forward($0, batch: fixture.batch, context: fixture.context, scope: scope)
        }
        var total = 0.0
        for e in 0..<scope.exitLimit {
            let z = fixture.logits(e)
            for i in 0..<fixture.batch {
                total +=
                    Double(lambdas[e]) * referenceCrossEntropy(z[(i * 4)..<(i * 4 + 4)], label: Int(fixture.labels[i]))
            }
        }
        return total / Double(fixture.batch)
    }

    /// Which block outputs are zero (the ReLU pattern; dropout's zeros are fixed by its keys).
    private func pattern(_ fixture: GradientFixture, scope: TrainingScope) -> [Bool] {
        // The fixture has an exit after every block.
        return (0..<scope.exitLimit).flatMap { fixture.network.blocks[$0].output(batch: fixture.batch).map { $0 == 0 } }
    }

    /// Checks the scoped gradient: finite differences on the trainable ranges, exact zeros
    /// elsewhere; on the first input whose ReLU pattern no finite-difference step changes.
    private func checkScopedGradient(
        _ scope: TrainingScope, lambdas: [Float], file: StaticString = #filePath, line: UInt = #line
    ) {
        let fixture = GradientFixture(dropout: 0.2)
        fixture.labels = (0..<fixture.batch).map { Int32($0 % 4) }
        let network = fixture.network
        var numeric: [Double] = []
        for seed in UInt64(1000)..<UInt64(1100) {
            fixture.input = Fixtures.normals(fixture.batch * 6, seed: seed)
            _ = scopedLoss(fixture, scope: scope, lambdas: lambdas)
            let reference = pattern(fixture, scope: scope)
            var crossed = false
            numeric = FiniteDifference.gradient(of: network.store.parameters, step: 2e-3) {
                let loss = scopedLoss(fixture, scope: scope, lambdas: lambdas)
                if pattern(fixture, scope: scope) != reference { crossed = true }
                return loss
            }
            if !crossed { break }
            numeric = []
        }
        guard !numeric.isEmpty else { return XCTFail("no input without ReLU crossings", file: file, line: line) }
        // Stale values must not survive in the parts a scoped backward skips.
        network.store.gradients.update(repeating: 7)
        fixture.input.withUnsafeBufferPointer {
            network.forward($0, batch: fixture.batch, context: fixture.context, scope: scope)
        }
        _ = fixture.labels.withUnsafeBufferPointer {
            fixture.objective.lossAndGradients(
                network: network, labels: $0, batch: fixture.batch, weighting: FixedExitWeights(lambdas),
                globalBatch: fixture.batch, activeExits: scope.exitLimit)
        }
        fixture.input.withUnsafeBufferPointer { network.backward(input: $0, batch: fixture.batch, scope: scope) }
        let analytic = Array(network.store.gradients)
        let trainable = network.trainableRanges(scope)
        XCTAssertFalse(trainable.isEmpty, file: file, line: line)
        for slot in network.store.parameterSlots
        where !(slot.name.hasPrefix("blocks") && slot.name.hasSuffix("linear.bias")) {
            let range = slot.offset..<(slot.offset + slot.count)
            if trainable.contains(where: { $0.contains(slot.offset) }) {
                assertGradientMatches(
                    Array(analytic[range]), Array(numeric[range]), relativeFloor: 3e-2, slot.name, file: file,
                    line: line)
            } else {
                XCTAssertEqual(
                    Set(analytic[range]), [0], "\(slot.name) is frozen or out of scope: zero gradient", file: file,
                    line: line)
            }
        }
    }

    func testCascadeStageGradient() {
        // Stage 2 of Cascade Optimization on exits after blocks 1, 2, 3: block 0 and head 0
        // frozen, block 1 and head 1 trained on exit 1's loss, block 2 and head 2 not run.
        checkScopedGradient(TrainingScope(exitLimit: 2, frozenBlocks: 1, frozenExits: [0]), lambdas: [0, 1, 0])
    }

    func testHeadsOnAFrozenBackboneGradient() {
        // The disjoint regime's second phase: every block and the last head frozen.
        checkScopedGradient(TrainingScope(exitLimit: 3, frozenBlocks: 3, frozenExits: [2]), lambdas: [0.5, 0.3, 0.2])
    }

    func testProgressiveActivationGradient() {
        // Only exit 0 active: the blocks after it are not run and get no gradient.
        checkScopedGradient(TrainingScope(exitLimit: 1), lambdas: [1, 0, 0])
    }

    func testTrainableRangesFollowTheKeyPaths() {
        let network = GradientFixture(dropout: 0).network
        func names(_ scope: TrainingScope) -> Set<String> {
            let ranges = network.trainableRanges(scope)
            let covered = network.store.parameterSlots.filter { slot in ranges.contains { $0.contains(slot.offset) } }
            // A slot is either wholly inside the ranges or wholly outside them.
            for slot in covered {
                XCTAssertTrue(ranges.contains { $0.contains(slot.offset + slot.count - 1) }, slot.name)
            }
            return Set(covered.map { String($0.name.split(separator: ".").prefix(2).joined(separator: ".")) })
        }
        XCTAssertEqual(
            names(.everything(exits: 3)), ["blocks.0", "blocks.1", "blocks.2", "exits.0", "exits.1", "exits.2"])
        XCTAssertEqual(names(TrainingScope(exitLimit: 2, frozenBlocks: 1, frozenExits: [0])), ["blocks.1", "exits.1"])
        XCTAssertEqual(names(TrainingScope(exitLimit: 3, frozenBlocks: 3, frozenExits: [2])), ["exits.0", "exits.1"])
        XCTAssertEqual(
            names(TrainingScope(exitLimit: 3, frozenExits: [0, 1])), ["blocks.0", "blocks.1", "blocks.2", "exits.2"])
        XCTAssertEqual(
            network.trainableRanges(.everything(exits: 3)), [0..<network.store.parameterCount], "adjacent parts merge")
    }

    func testFrozenBlocksKeepTheirRunningStatistics() {
        let fixture = GradientFixture(dropout: 0.2)
        fixture.input = Fixtures.normals(fixture.batch * 6, seed: 5)
        let before = Array(fixture.network.store.buffers)
        let scope = TrainingScope(exitLimit: 3, frozenBlocks: 1, frozenExits: [0])
        fixture.input.withUnsafeBufferPointer {
            fixture.network.forward($0, batch: fixture.batch, context: fixture.context, scope: scope)
        }
        for slot in fixture.network.store.bufferSlots {
            let range = slot.offset..<(slot.offset + slot.count)
            let changed = Array(fixture.network.store.buffers[range]) != Array(before[range])
            XCTAssertEqual(
                changed, !slot.name.hasPrefix("blocks.0"), "\(slot.name): only unfrozen blocks update their statistics")
        }
    }

    func testOptimizersUpdateOnlyTheirRanges() {
        let fixture = GradientFixture(dropout: 0)
        let store = fixture.network.store
        for i in store.gradients.indices { store.gradients[i] = Float(i % 7) - 3 }
        let ranges = fixture.network.trainableRanges(TrainingScope(exitLimit: 2, frozenBlocks: 1, frozenExits: [0]))
        for optimizer in [
            Adam(parameterCount: store.parameterCount, weightDecay: 0.1, decoupled: true),
            SGD(parameterCount: store.parameterCount, momentum: 0.9, weightDecay: 0.1),
        ] as [Optimizer] {
            let before = Array(store.parameters)
            optimizer.step(store, learningRate: 0.1, ranges: ranges)
            for i in store.parameters.indices where store.gradients[i] != 0 {
                let inside = ranges.contains { $0.contains(i) }
                XCTAssertEqual(store.parameters[i] != before[i], inside, "parameter \(i)")
                for (name, state) in optimizer.stateBuffers { XCTAssertEqual(state[i] != 0, inside, "\(name) \(i)") }
            }
            optimizer.reset()
            XCTAssertEqual(optimizer.stepCount, 0)
            for (name, state) in optimizer.stateBuffers { XCTAssertEqual(Set(state), [0], name) }
        }
    }
}
