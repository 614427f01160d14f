import CGTKernels
import CGTTestSupport
import XCTest

@testable import CGTModel

/// `EarlyExitNetwork` plumbing: costs, key names, the parameter layout, initialisation, forward limits.
final class NetworkStructureTests: XCTestCase {
    /// The Indian Pines network of the paper: 200 bands -> 5 x 256, exits after layers 1, 3, 5, 16 classes.
    private func paperMLP() -> EarlyExitNetwork {
        MLPArchitecture(
            inputFeatures: 200, hiddenWidths: [256, 256, 256, 256, 256], exitsAfter: [1, 3, 5], classes: 16,
            batchNorm: true, dropout: 0.2
        ).build()
    }

    func testExitCostsOfThePaperMLP() {
        let network = paperMLP()
        // Block 0: Linear 200 -> 256: 2 * 200 * 256 + 256 = 102_400 + 256 = 102_656
        //          BatchNorm: 2 * 256 = 512; ReLU: 256; Dropout: 0       -> 103_424
        // Blocks 1-4: Linear 256 -> 256: 2 * 256 * 256 + 256 = 131_328
        //          + 512 + 256 + 0                                       -> 132_096 each
        // Heads: Linear 256 -> 16: 2 * 256 * 16 + 16 = 8_192 + 16         -> 8_208 each
        let block0 = 103_424
        let block = 132_096
        let head = 8_208
        XCTAssertEqual(network.blocks.map(\.inferenceFLOPs), [block0, block, block, block, block])
        XCTAssertEqual(network.exits.map(\.inferenceFLOPs), [head, head, head])
        // Exit 1 (after block 0): block 0 + head 0                          = 111_632
        // Exit 2 (after block 2): blocks 0-2 + heads 0, 1 = 103_424 + 264_192 + 16_416 = 384_032
        // Exit 3 (after block 4): blocks 0-4 + heads 0-2 = 103_424 + 528_384 + 24_624  = 656_432
        XCTAssertEqual(network.exitCosts(), [111_632, 384_032, 656_432])
        XCTAssertEqual(block0 + head, 111_632)
        XCTAssertEqual(block0 + 2 * block + 2 * head, 384_032)
        XCTAssertEqual(block0 + 4 * block + 3 * head, 656_432)
        // Full network: all blocks and the last head = 103_424 + 528_384 + 8_208 = 640_016.
        XCTAssertEqual(network.fullNetworkCost, 640_016)
        XCTAssertEqual(block0 + 4 * block + head, 640_016)
    }

    func testExitCostsWithoutBatchNormOrDropout() {
        let network = MLPArchitecture(
            inputFeatures: 10, hiddenWidths: [20, 30], exitsAfter: [1, 2], classes: 3,
            batchNorm: false, dropout: 0
        ).build()
        XCTAssertEqual(network.blocks.map { $0.layers.map(\.name) }, [["linear", "relu"], ["linear", "relu"]])
        // Block 0: 2 * 10 * 20 + 20 = 420, ReLU 20 -> 440. Block 1: 2 * 20 * 30 + 30 = 1_230, ReLU 30 -> 1_260.
        // Head 0: 2 * 20 * 3 + 3 = 123. Head 1: 2 * 30 * 3 + 3 = 183.
        // Exit 1: 440 + 123 = 563. Exit 2: 440 + 1_260 + 123 + 183 = 2_006. Full: 440 + 1_260 + 183 = 1_883.
        XCTAssertEqual(network.exitCosts(), [563, 2_006])
        XCTAssertEqual(network.fullNetworkCost, 1_883)
        XCTAssertTrue(network.batchNormLayers.isEmpty)
        XCTAssertTrue(network.store.bufferSlots.isEmpty)
    }

    func testKeyNamesFollowPyTorch() {
        let network = paperMLP()
        // Forward order: each block, then the head that reads it (exits after blocks 0, 2 and 4).
        var expected: [String] = []
        for b in 0..<5 {
            expected += [
                "blocks.\(b).linear.weight", "blocks.\(b).linear.bias", "blocks.\(b).bn.weight", "blocks.\(b).bn.bias",
            ]
            if b % 2 == 0 { expected += ["exits.\(b / 2).linear.weight", "exits.\(b / 2).linear.bias"] }
        }
        XCTAssertEqual(network.store.parameterSlots.map(\.name), expected)
        XCTAssertEqual(
            network.store.bufferSlots.map(\.name),
            (0..<5).flatMap { ["blocks.\($0).bn.running_mean", "blocks.\($0).bn.running_var"] })

        let slots = Dictionary(uniqueKeysWithValues: network.store.parameterSlots.map { ($0.name, $0.shape) })
        XCTAssertEqual(slots["blocks.0.linear.weight"], [256, 200])
        XCTAssertEqual(slots["blocks.0.linear.bias"], [256])
        XCTAssertEqual(slots["blocks.3.linear.weight"], [256, 256])
        XCTAssertEqual(slots["blocks.0.bn.weight"], [256])
        XCTAssertEqual(slots["exits.0.linear.weight"], [16, 256])
        XCTAssertEqual(slots["exits.2.linear.bias"], [16])
        // Running statistics are buffers, not parameters.
        XCTAssertNil(slots["blocks.0.bn.running_mean"])
        XCTAssertEqual(network.store.bufferSlots.first { $0.name == "blocks.0.bn.running_mean" }?.shape, [256])
        XCTAssertEqual(network.batchNormLayers.count, 5)
        // PyTorch's Sequential(linear, bn, relu, dropout): the ReLU, which has no parameters, runs inside BatchNorm's pass.
        XCTAssertEqual(
            network.blocks.map { $0.layers.map(\.name) }, Array(repeating: ["linear", "bn", "dropout"], count: 5))
        XCTAssertTrue(network.batchNormLayers.allSatisfy(\.appliesReLU))
        XCTAssertEqual(network.blocks.map(\.prefix), ["blocks.0", "blocks.1", "blocks.2", "blocks.3", "blocks.4"])
        XCTAssertEqual(network.exitBlocks, [0, 2, 4])
    }

    func testParametersAndBuffersAreContiguous() {
        let network = paperMLP()
        let store = network.store
        // 200 * 256 + 3 * 256 = 51_968; 4 blocks of 256 * 256 + 3 * 256 = 66_304; 3 heads of 256 * 16 + 16 = 4_112.
        // Nothing else: no padding between tensors.
        XCTAssertEqual(store.parameterCount, 51_968 + 4 * 66_304 + 3 * 4_112)
        XCTAssertEqual(store.parameterCount, 329_520)
        XCTAssertEqual(store.gradients.count, store.parameterCount)
        XCTAssertEqual(store.buffers.count, 5 * 2 * 256)
        for (slots, total) in [(store.parameterSlots, store.parameterCount), (store.bufferSlots, store.buffers.count)] {
            var next = 0
            for slot in slots {
                XCTAssertEqual(slot.offset, next, "\(slot.name) does not start where the previous tensor ends")
                next += slot.count
            }
            XCTAssertEqual(next, total, "the tensors do not cover the buffer exactly")
        }
        // A slot's views are windows into the shared buffers.
        let head = store.parameterSlots.first { $0.name == "exits.2.linear.bias" }!
        XCTAssertEqual(store.parameter(head).baseAddress, store.parameters.baseAddress! + head.offset)
        XCTAssertEqual(store.gradient(head).baseAddress, store.gradients.baseAddress! + head.offset)
        XCTAssertEqual(store.parameter(head).count, 16)
        XCTAssertEqual(head.offset + head.count, store.parameterCount, "the last head's bias closes the buffer")
    }

    /// The offsets `backward` reports through `gradientsReady`, and the gradients at each report.
    private func checkGradientsReady(
        hiddenWidths: [Int], exitsAfter: [Int], expectedOrder: [String], file: StaticString = #filePath,
        line: UInt = #line
    ) {
        let batch = 6
        let network = MLPArchitecture(
            inputFeatures: 6, hiddenWidths: hiddenWidths, exitsAfter: exitsAfter, classes: 4, dropout: 0.2
        ).build()
        network.initialize(seed: 14)
        network.reserve(maxBatch: batch)
        let objective = ExitObjective(exits: exitsAfter.count, classes: 4)
        objective.reserve(maxBatch: batch)
        let ids = SampleIDs((0..<Int64(batch)).map { $0 })
        let x = Fixtures.normals(batch * 6, seed: 15)
        let labels = Fixtures.labels(batch, classes: 4, seed: 16)
        x.withUnsafeBufferPointer { network.forward($0, batch: batch, context: ids.context(.training, key: 2)) }
        labels.withUnsafeBufferPointer {
            _ = objective.lossAndGradients(
                network: network, labels: $0, batch: batch, weighting: SoftCGT(tau: 0.9), globalBatch: batch)
        }
        x.withUnsafeBufferPointer { network.backward(input: $0, batch: batch) }
        let final = Array(network.store.gradients)
        XCTAssertTrue(final.contains { $0 != 0 }, file: file, line: line)

        // Again from poisoned gradients: at each report, everything from the offset on is final.
        network.store.gradients.update(repeating: .nan)
        var reported: [Int] = []
        x.withUnsafeBufferPointer { input in
            network.backward(input: input, batch: batch) { offset in
                reported.append(offset)
                XCTAssertEqual(
                    Array(network.store.gradients[offset...]), Array(final[offset...]),
                    "gradients from \(offset) on are not final", file: file, line: line)
            }
        }
        let start = { (name: String) in
            network.store.parameterSlots.first { $0.name == "\(name).linear.weight" }!.offset
        }
        XCTAssertEqual(reported, expectedOrder.map(start), file: file, line: line)
        XCTAssertEqual(reported.last, 0, file: file, line: line)
    }

    func testBackwardReportsFinishedGradientsFromTheEnd() {
        checkGradientsReady(
            hiddenWidths: [8, 8, 8], exitsAfter: [1, 2, 3],
            expectedOrder: ["exits.2", "blocks.2", "exits.1", "blocks.1", "exits.0", "blocks.0"])
        // A block without a head of its own, and a first block without one.
        checkGradientsReady(
            hiddenWidths: [8, 7, 9, 5], exitsAfter: [2, 4],
            expectedOrder: ["exits.1", "blocks.3", "blocks.2", "exits.0", "blocks.1", "blocks.0"])
    }

    func testInitializationIsDeterministic() {
        let small = MLPArchitecture(inputFeatures: 6, hiddenWidths: [8, 8], exitsAfter: [1, 2], classes: 4)
        let a = small.build()
        let b = small.build()
        let c = small.build()
        a.initialize(seed: 42)
        b.initialize(seed: 42)
        c.initialize(seed: 43)
        XCTAssertEqual(Array(a.store.parameters), Array(b.store.parameters))
        XCTAssertEqual(Array(a.store.buffers), Array(b.store.buffers))
        XCTAssertNotEqual(Array(a.store.parameters), Array(c.store.parameters))
        // Re-initialising restores the same values after training changed them.
        a.store.parameters.update(repeating: 7)
        a.initialize(seed: 42)
        XCTAssertEqual(Array(a.store.parameters), Array(b.store.parameters))
        // PyTorch's defaults: BatchNorm gamma 1, beta 0, running mean 0, running variance 1.
        for slot in a.store.parameterSlots where slot.name.contains(".bn.") {
            XCTAssertEqual(
                Array(a.store.parameter(slot)),
                Array(repeating: slot.name.hasSuffix("weight") ? 1 : 0, count: slot.count), slot.name)
        }
        for slot in a.store.bufferSlots {
            XCTAssertEqual(
                Array(a.store.buffer(slot)),
                Array(repeating: slot.name.hasSuffix("running_var") ? 1 : 0, count: slot.count), slot.name)
        }
        // Linear tensors: uniform within 1 / sqrt(fan in), and different in every layer.
        for slot in a.store.parameterSlots where slot.name.contains(".linear.") {
            let fanIn = slot.name.hasPrefix("blocks.0") ? 6 : 8
            let values = Array(a.store.parameter(slot))
            XCTAssertTrue(values.allSatisfy { abs($0) <= 1 / Float(fanIn).squareRoot() }, slot.name)
            XCTAssertGreaterThan(Set(values).count, values.count / 2, slot.name)
        }
    }

    func testSnapshotRestoresParametersAndBuffers() {
        let network = MLPArchitecture(inputFeatures: 6, hiddenWidths: [8], exitsAfter: [1], classes: 4).build()
        network.initialize(seed: 1)
        let saved = network.store.snapshot()
        network.store.parameters.update(repeating: 3)
        network.store.buffers.update(repeating: -1)
        network.store.restore(saved)
        XCTAssertEqual(Array(network.store.parameters), saved.parameters)
        XCTAssertEqual(Array(network.store.buffers), saved.buffers)
    }

    func testExitLimitRunsOnlyTheBlocksItNeeds() {
        let batch = 5
        let network = MLPArchitecture(inputFeatures: 6, hiddenWidths: [8, 8, 8], exitsAfter: [1, 2, 3], classes: 4)
            .build()
        network.initialize(seed: 2)
        network.reserve(maxBatch: batch)
        let inference = ForwardContext(mode: .inference)
        let a = Fixtures.normals(batch * 6, seed: 3)
        let b = Fixtures.normals(batch * 6, seed: 4)
        b.withUnsafeBufferPointer { network.forward($0, batch: batch, context: inference) }
        let fullB = (0..<3).map { Array(network.logits(exit: $0, batch: batch)) }
        a.withUnsafeBufferPointer { network.forward($0, batch: batch, context: inference) }
        let fullA = (0..<3).map { Array(network.logits(exit: $0, batch: batch)) }
        XCTAssertNotEqual(fullA[0], fullB[0])
        // Only exit 0 is recomputed for b; exits 1 and 2 still hold a's logits.
        b.withUnsafeBufferPointer {
            network.forward($0, batch: batch, context: inference, scope: TrainingScope(exitLimit: 1))
        }
        XCTAssertEqual(Array(network.logits(exit: 0, batch: batch)), fullB[0])
        XCTAssertEqual(Array(network.logits(exit: 1, batch: batch)), fullA[1])
        XCTAssertEqual(Array(network.logits(exit: 2, batch: batch)), fullA[2])
        b.withUnsafeBufferPointer {
            network.forward($0, batch: batch, context: inference, scope: TrainingScope(exitLimit: 2))
        }
        XCTAssertEqual(Array(network.logits(exit: 1, batch: batch)), fullB[1])
        XCTAssertEqual(Array(network.logits(exit: 2, batch: batch)), fullA[2])
    }

    func testInferenceForwardMatchesADoubleReference() {
        // Exit logits at inference from the store's tensors, in Double: Linear, BatchNorm with
        // running statistics (set here to non-trivial values), ReLU, and the heads.
        let batch = 3
        let network = MLPArchitecture(inputFeatures: 5, hiddenWidths: [7, 6], exitsAfter: [1, 2], classes: 3).build()
        network.initialize(seed: 5)
        network.reserve(maxBatch: batch)
        let store = network.store
        for (k, slot) in store.bufferSlots.enumerated() {
            let values =
                slot.name.hasSuffix("running_var")
                ? Fixtures.uniforms(slot.count, seed: UInt64(k), 0.5, 2) : Fixtures.normals(slot.count, seed: UInt64(k))
            _ = store.buffer(slot).update(from: values)
        }
        for (k, slot) in store.parameterSlots.enumerated() where slot.name.contains(".bn.") {
            _ = store.parameter(slot).update(from: Fixtures.uniforms(slot.count, seed: UInt64(50 + k), 0.5, 1.5))
        }
        func tensor(_ name: String, buffer: Bool = false) -> [Double] {
            let slots = buffer ? store.bufferSlots : store.parameterSlots
            let slot = slots.first { $0.name == name }!
            return (buffer ? Array(store.buffer(slot)) : Array(store.parameter(slot))).map(Double.init)
        }
        func linear(_ x: [Double], _ prefix: String) -> [Double] {
            let w = tensor("\(prefix).weight")
            let b = tensor("\(prefix).bias")
            let inputs = x.count / batch
            return (0..<batch).flatMap { n in
                (0..<b.count).map { o in (0..<inputs).reduce(b[o]) { $0 + x[n * inputs + $1] * w[o * inputs + $1] } }
            }
        }
        func block(_ x: [Double], _ b: Int) -> [Double] {
            let a = linear(x, "blocks.\(b).linear")
            let mean = tensor("blocks.\(b).bn.running_mean", buffer: true)
            let variance = tensor("blocks.\(b).bn.running_var", buffer: true)
            let gamma = tensor("blocks.\(b).bn.weight")
            let beta = tensor("blocks.\(b).bn.bias")
            let width = mean.count
            return a.indices.map { k in
                let o = k % width
                return max(0, (a[k] - mean[o]) / (variance[o] + 1e-5).squareRoot() * gamma[o] + beta[o])
            }
        }
        let x = Fixtures.normals(batch * 5, seed: 6)
        let h0 = block(x.map(Double.init), 0)
        let h1 = block(h0, 1)
        let expected = [linear(h0, "exits.0.linear"), linear(h1, "exits.1.linear")]
        x.withUnsafeBufferPointer { network.forward($0, batch: batch, context: ForwardContext(mode: .inference)) }
        for e in 0..<2 {
            assertAllClose(
                Array(network.logits(exit: e, batch: batch)), expected[e].map(Float.init), relative: 1e-4,
                absolute: 1e-5, "exit \(e)")
        }
    }

    func testBackwardOverwritesGradients() {
        let fixture = GradientFixture(dropout: 0.2)
        fixture.input = Fixtures.normals(fixture.batch * 6, seed: 12)
        fixture.labels = Fixtures.labels(fixture.batch, classes: 4, seed: 13)
        let (_, first) = fixture.analyticGradient(weighting: SoftCGT(tau: 0.9), globalBatch: fixture.batch)
        fixture.network.store.gradients.update(repeating: 1e6)
        let (_, second) = fixture.analyticGradient(weighting: SoftCGT(tau: 0.9), globalBatch: fixture.batch)
        XCTAssertEqual(second, first)
        XCTAssertTrue(first.contains { $0 != 0 })
    }
}
