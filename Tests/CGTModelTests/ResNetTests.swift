import CGTKernels
import CGTRandom
import CGTTestSupport
import XCTest

@testable import CGTModel

/// The residual block and the ResNet: gradients against finite differences (the block with an
/// identity and a projection shortcut, in training mode; the whole network), torchvision's key
/// paths and shapes, FLOP counts by hand, and learning a separable image problem.
final class ResNetTests: XCTestCase {
    // MARK: The block

    /// The block's kinks at its current input: the sign pattern of BN1's ReLU and of the ReLU
    /// after the sum. A finite-difference step that changes it measures the kink, not the gradient.
    private func kinks(_ block: ResidualBlock, batch: Int) -> [Bool] {
        let n = batch * block.outputCount
        return block.hidden.storage.prefix(n).map { $0 > 0 }
    }

    /// Central differences (L(v + h) - L(v - h)) / (v+ - v-) at `entries` of `values`, nil where
    /// a step crossed a kink (`loss` returns nil there).
    private func differences(
        of values: UnsafeMutableBufferPointer<Float>, at entries: [Int], step h: Float, loss: () -> Double?
    ) -> [Double?] {
        entries.map { j in
            let original = values[j]
            let (up, down) = (original + h, original - h)
            values[j] = up
            let lossUp = loss()
            values[j] = down
            let lossDown = loss()
            values[j] = original
            guard let lossUp, let lossDown else { return nil }
            return (lossUp - lossDown) / (Double(up) - Double(down))
        }
    }

    /// Checks d(sum w * y) / d(every parameter, x) of `block` in training mode, with BatchNorm
    /// away from gamma = 1, beta = 0, at up to 256 entries of each tensor (evenly spread).
    /// Steps that cross a kink are left out of both sides; at most half the entries may be.
    ///
    /// The step sits between two errors: at 1e-2 most steps of a convolution weight move some
    /// ReLU input across 0; at 1e-3 the Float32 rounding of the loss (a sum over every output,
    /// each moved a little by the batch statistics), divided by the step, reaches a percent of
    /// the small input-gradient entries (measured). Entries below 5% of a tensor's largest are
    /// therefore judged against 5% of it.
    private func checkBlockGradients(
        _ block: ResidualBlock, batch: Int, seed: UInt64, file: StaticString = #filePath, line: UInt = #line
    ) {
        let harness = LayerHarness(block, batch: batch, seed: seed)
        for (name, layer) in block.sublayers where layer is BatchNorm {
            let gamma = harness.store.parameter(harness.parameterSlot("\(name).weight"))
            let beta = harness.store.parameter(harness.parameterSlot("\(name).bias"))
            _ = gamma.update(from: Fixtures.uniforms(gamma.count, seed: seed + 1, 0.6, 1.4))
            _ = beta.update(from: Fixtures.uniforms(beta.count, seed: seed + 2, -0.3, 0.3))
        }
        var x = Fixtures.normals(batch * block.inputCount, seed: seed + 3)
        let weights = Fixtures.normals(batch * block.outputCount, seed: seed + 4)
        let context = ForwardContext(mode: .training)
        func pattern(_ y: [Float]) -> [Bool] { kinks(block, batch: batch) + y.map { $0 > 0 } }
        let base = pattern(harness.forward(x, context: context))
        func loss(_ input: [Float]) -> Double? {
            let y = harness.forward(input, context: context)
            return pattern(y) == base ? weightedSum(y, weights) : nil
        }
        func entries(_ count: Int) -> [Int] { count <= 256 ? Array(0..<count) : (0..<256).map { $0 * count / 256 } }
        func compare(_ analytic: [Float], _ numeric: [Double?], _ entries: [Int], _ name: String) {
            let kept = numeric.indices.filter { numeric[$0] != nil }
            XCTAssertGreaterThanOrEqual(
                kept.count, numeric.count / 2, "\(name): too many steps cross a kink", file: file, line: line)
            assertGradientMatches(
                kept.map { analytic[entries[$0]] }, kept.map { numeric[$0]! },
                relativeFloor: 5e-2, name, file: file, line: line)
        }

        let inputGradient = harness.gradients(input: x, outputGradient: weights, context: context)
        let h: Float = 2e-3
        var checked: [String] = []
        for slot in harness.store.parameterSlots {
            let name = String(slot.name.dropFirst("layer.".count))
            let analytic = Array(harness.store.gradient(slot))
            if name.hasSuffix("bias") && !name.hasPrefix("bn") && !name.hasPrefix("downsample.1") {
                // A convolution's bias feeds a BatchNorm, which subtracts its mean again: the
                // gradient is zero, up to the rounding of the batch statistics.
                let scale = Array(harness.store.gradient(harness.parameterSlot("bn2.weight"))).map(abs).max()!
                XCTAssertLessThan(analytic.map(abs).max()!, 1e-3 * scale + 1e-5, name, file: file, line: line)
                continue
            }
            let chosen = entries(slot.count)
            let numeric = differences(of: harness.store.parameter(slot), at: chosen, step: h) { loss(x) }
            compare(analytic, numeric, chosen, name)
            checked.append(name)
        }
        let chosen = entries(x.count)
        let inputNumeric = x.withUnsafeMutableBufferPointer { values in
            differences(of: values, at: chosen, step: h) { loss(Array(values)) }
        }
        compare(inputGradient, inputNumeric, chosen, "dx")
        let expected =
            ["conv1.weight", "bn1.weight", "bn1.bias", "conv2.weight", "bn2.weight", "bn2.bias"]
            + (block.hasProjection ? ["downsample.0.weight", "downsample.1.weight", "downsample.1.bias"] : [])
        XCTAssertEqual(checked, expected, file: file, line: line)
    }

    func testIdentityBlockGradientsMatchFiniteDifferences() {
        // 6 channels fill no block of 16: channels-last maps.
        checkBlockGradients(
            ResidualBlock(
                name: "0", inputShape: [6, 3, 4], outputChannels: 6, inputLayout: .channelsLast, layout: .channelsLast),
            batch: 2, seed: 10)
    }

    func testProjectionBlockGradientsMatchFiniteDifferences() {
        // The input channels-first, as a network's first map; the block channels-last.
        checkBlockGradients(
            ResidualBlock(
                name: "0", inputShape: [3, 4, 4], outputChannels: 5, inputLayout: .channelsFirst,
                layout: .channelsLast),
            batch: 3, seed: 20)
    }

    /// Blocked maps (multiples of 16 channels) give the channels-first block's values and
    /// gradients, which the checks above tie to finite differences: the same parameters, the
    /// input and output gradient converted, with an identity and a projection shortcut.
    func testBlockedBlockMatchesChannelsFirst() {
        for blockedLayout in [MapLayout.blocked8, .blocked16] {
            for outputChannels in [16, 32] {
                checkBlockedBlock(layout: blockedLayout, outputChannels: outputChannels)
            }
        }
    }

    private func checkBlockedBlock(layout blockedLayout: MapLayout, outputChannels: Int) {
        let (batch, shape) = (2, [16, 3, 3])
        let plain = LayerHarness(
            ResidualBlock(name: "0", inputShape: shape, outputChannels: outputChannels), batch: batch, seed: 30)
        let blocked = LayerHarness(
            ResidualBlock(
                name: "0", inputShape: shape, outputChannels: outputChannels, inputLayout: blockedLayout,
                layout: blockedLayout),
            batch: batch, seed: 30)
        let x = Fixtures.normals(batch * 16 * 9, seed: 31)
        let dy = Fixtures.normals(batch * outputChannels * 9, seed: 32)
        func toBlocked(_ v: [Float], _ c: Int) -> [Float] {
            MapLayout.channelsFirst.converted(v, to: blockedLayout, channels: c, height: 3, width: 3)
        }
        let context = ForwardContext(mode: .training)
        let y = plain.forward(x, context: context)
        let yBlocked = blocked.forward(toBlocked(x, 16), context: context)
        let dx = plain.backward(input: x, output: y, outputGradient: dy)
        let dxBlocked = blocked.backward(
            input: toBlocked(x, 16), output: yBlocked, outputGradient: toBlocked(dy, outputChannels))
        assertClose(
            yBlocked, toBlocked(y, outputChannels), tolerance: 1e-4, "y, \(outputChannels) channels, \(blockedLayout)")
        assertClose(dxBlocked, toBlocked(dx, 16), tolerance: 1e-4, "dx, \(outputChannels) channels, \(blockedLayout)")
        for slot in plain.store.parameterSlots {
            assertClose(
                Array(blocked.store.gradient(slot)), Array(plain.store.gradient(slot)), tolerance: 1e-4,
                "\(slot.name), \(outputChannels) channels, \(blockedLayout)")
        }
    }

    /// |a - b| <= tolerance * max(1, largest |b|) entry by entry.
    private func assertClose(
        _ a: [Float], _ b: [Float], tolerance: Float, _ name: String, file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertEqual(a.count, b.count, name, file: file, line: line)
        let scale = max(1, b.map(abs).max() ?? 0)
        let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, tolerance * scale, name, file: file, line: line)
    }

    /// The forward pass is the block's definition, computed layer by layer on channels-first maps.
    func testForwardIsReLUOfMainPathPlusShortcut() {
        let batch = 2
        let block = ResidualBlock(name: "0", inputShape: [3, 4, 4], outputChannels: 5)
        let harness = LayerHarness(block, batch: batch, seed: 7)
        let x = Fixtures.normals(batch * block.inputCount, seed: 8)
        let context = ForwardContext(mode: .inference)
        let y = harness.forward(x, context: context)
        // The same sublayers run one by one (inference mode: they keep no state).
        func run(_ layer: Layer, _ input: [Float]) -> [Float] {
            var output = [Float](repeating: .nan, count: batch * layer.outputCount)
            input.withUnsafeBufferPointer { i in
                output.withUnsafeMutableBufferPointer { layer.forward(i, into: $0, batch: batch, context: context) }
            }
            return output
        }
        let main = run(block.bn2, run(block.conv2, run(block.bn1, run(block.conv1, x))))
        let shortcut = run(block.projection!.bn, run(block.projection!.conv, x))
        XCTAssertTrue(block.bn1.appliesReLU)
        XCTAssertFalse(block.bn2.appliesReLU)
        XCTAssertEqual(block.projection!.conv.kernelShape, [1, 1])
        let expected = zip(main, shortcut).map { max($0 + $1, 0) }
        XCTAssertEqual(y.count, expected.count)
        for k in y.indices { XCTAssertEqual(y[k], expected[k], accuracy: 1e-5, "value \(k)") }
        XCTAssertTrue(y.contains { $0 == 0 } && y.contains { $0 > 0 }, "the ReLU after the sum is active")
    }

    // MARK: The network

    func testKeyNamesFollowTorchvision() {
        let network = ResNetArchitecture().build()
        func block(_ prefix: String, projects: Bool) -> [String] {
            [
                "conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias", "conv2.weight", "conv2.bias", "bn2.weight",
                "bn2.bias",
            ]
            .map { "\(prefix).\($0)" }
                + (projects
                    ? ["downsample.0.weight", "downsample.0.bias", "downsample.1.weight", "downsample.1.bias"]
                        .map { "\(prefix).\($0)" } : [])
        }
        let head = { (e: Int) in ["exits.\(e).linear.weight", "exits.\(e).linear.bias"] }
        let expected =
            ["blocks.0.conv.weight", "blocks.0.conv.bias", "blocks.0.bn.weight", "blocks.0.bn.bias"]
            + block("blocks.0.0", projects: false) + head(0) + block("blocks.1.0", projects: true) + head(1)
            + block("blocks.2.0", projects: true) + head(2)
        XCTAssertEqual(network.store.parameterSlots.map(\.name), expected)
        let batchNorms = [
            "blocks.0.bn", "blocks.0.0.bn1", "blocks.0.0.bn2", "blocks.1.0.bn1", "blocks.1.0.bn2",
            "blocks.1.0.downsample.1", "blocks.2.0.bn1", "blocks.2.0.bn2", "blocks.2.0.downsample.1",
        ]
        XCTAssertEqual(
            network.store.bufferSlots.map(\.name), batchNorms.flatMap { ["\($0).running_mean", "\($0).running_var"] })
        // The paths checkpoints write num_batches_tracked under.
        XCTAssertEqual(
            (network.blocks + network.exits).flatMap(\.leafLayers).filter { $0.layer is BatchNorm }.map(\.path),
            batchNorms)
        XCTAssertEqual(network.batchNormLayers.count, 9)
        let shapes = Dictionary(uniqueKeysWithValues: network.store.parameterSlots.map { ($0.name, $0.shape) })
        XCTAssertEqual(shapes["blocks.0.conv.weight"], [16, 1, 3, 3])
        XCTAssertEqual(shapes["blocks.0.0.conv1.weight"], [16, 16, 3, 3])
        XCTAssertEqual(shapes["blocks.1.0.conv1.weight"], [32, 16, 3, 3])
        XCTAssertEqual(shapes["blocks.1.0.conv2.weight"], [32, 32, 3, 3])
        XCTAssertEqual(shapes["blocks.1.0.downsample.0.weight"], [32, 16, 1, 1])
        XCTAssertEqual(shapes["blocks.1.0.downsample.0.bias"], [32])
        XCTAssertEqual(shapes["blocks.2.0.downsample.1.weight"], [64])
        XCTAssertEqual(shapes["exits.2.linear.weight"], [10, 64])
        XCTAssertEqual(
            network.blocks.map { $0.layers.map(\.name) }, [["conv", "bn", "0"], ["pool", "0"], ["pool", "0"]])
        XCTAssertEqual(network.blocks.map(\.outputShape), [[16, 28, 28], [32, 14, 14], [64, 7, 7]])
        XCTAssertEqual(network.exits.map { $0.layers.map(\.name) }, Array(repeating: ["gap", "linear"], count: 3))
        // Stem 144 + 16 + 32 | stage 1: 2 * (2_304 + 16) + 4 * 16 | stage 2: 4_608 + 9_216 + 64 + 128 + 512 + 32 + 64
        // | stage 3: 18_432 + 36_864 + 128 + 256 + 2_048 + 64 + 128 | heads 170, 330, 650.
        XCTAssertEqual(
            network.store.parameterCount,
            192 + 4_704 + 14_624 + 57_920 + 170 + 330 + 650)
    }

    func testBlocksPerStageAndExits() {
        let network = ResNetArchitecture(
            inputShape: [3, 8, 8], stemChannels: 4, channels: [4, 8], blocksPerStage: 2, exitsAfter: [2], classes: 5
        ).build()
        XCTAssertEqual(network.blocks.map { $0.layers.map(\.name) }, [["conv", "bn", "0", "1"], ["pool", "0", "1"]])
        let blocks = network.blocks.flatMap(\.layers).compactMap { $0 as? ResidualBlock }
        XCTAssertEqual(blocks.map(\.hasProjection), [false, false, true, false])
        XCTAssertEqual(network.exitBlocks, [1])
        XCTAssertEqual(network.exits[0].inputCount, 8 * 4 * 4)
        XCTAssertTrue(network.store.parameterSlots.contains { $0.name == "blocks.1.1.conv2.weight" })
    }

    func testFLOPsByHand() {
        let network = ResNetArchitecture(
            inputShape: [1, 4, 4], stemChannels: 2, channels: [2, 4], exitsAfter: [1, 2], classes: 3
        ).build()
        // Stage 0 on 4x4 (16 positions): stem conv 2 * 9 * 2 * 16 + 32 = 608; BatchNorm and ReLU 3 * 32 = 96.
        //   Block: conv1 and conv2 2 * 18 * 2 * 16 + 32 = 1_184 each; BN1 with ReLU 96; BN2 64;
        //   add and ReLU 2 * 32 = 64.                                    -> 608 + 96 + 2_368 + 224 = 3_296
        // Stage 1: pool 3 * 2 * 2 * 2 = 24, then on 2x2 (4 positions): conv1 2 * 18 * 4 * 4 + 16 = 592;
        //   conv2 2 * 36 * 4 * 4 + 16 = 1_168; BN1 48; BN2 32; projection 2 * 2 * 4 * 4 + 16 = 80 and
        //   its BatchNorm 32; add and ReLU 32.                             -> 24 + 1_984 = 2_008
        XCTAssertEqual(network.blocks.map(\.inferenceFLOPs), [3_296, 2_008])
        XCTAssertEqual(608 + 96 + 2 * 1_184 + 96 + 64 + 64, 3_296)
        XCTAssertEqual(24 + 592 + 1_168 + 48 + 32 + 80 + 32 + 32, 2_008)
        // Heads: average pool 1 per input, then Linear 2 * C * 3 + 3: 32 + 15 = 47; 16 + 27 = 43.
        XCTAssertEqual(network.exits.map(\.inferenceFLOPs), [47, 43])
        XCTAssertEqual(network.exitCosts(), [3_343, 3_343 + 2_008 + 43])
    }

    func testNetworkGradientMatchesFiniteDifferences() {
        // A projection in stage 2; channel counts that fill no block: channels-last maps.
        let architecture = ResNetArchitecture(
            inputShape: [1, 4, 4], stemChannels: 2, channels: [2, 3], exitsAfter: [1, 2], classes: 3)
        let batch = 2
        let network = architecture.build()
        network.initialize(seed: 5)
        network.reserve(maxBatch: batch)
        let batchNormPaths = (network.blocks + network.exits).flatMap(\.leafLayers).filter { $0.layer is BatchNorm }
            .map(\.path)
        func isBatchNorm(_ slot: String) -> Bool { batchNormPaths.contains { slot.hasPrefix("\($0).") } }
        ImageNetworkGradientCheck.perturbBatchNorm(network, isBatchNorm: isBatchNorm)
        // The CNN's step (see `CNNTests`). The maps are smaller than the CNN test's: every stem
        // weight moves the inputs of four ReLUs and a max pool, and on 6x6 images with 3 and 5
        // channels most of its steps crossed some kink. Each tensor is checked separately but the
        // convolutions' biases, which BatchNorm cancels (the whole-vector check covers them).
        ImageNetworkGradientCheck.assertMatches(
            network, batch: batch, classes: architecture.classes, lambdas: [0.6, 0.4],
            kinkPattern: {
                ImageNetworkGradientCheck.kinkPattern(
                    network, $0, batch: batch,
                    rectifies: { ($0 as? BatchNorm)?.appliesReLU == true || $0 is ResidualBlock },
                    inner: { layer in
                        (layer as? ResidualBlock).map { self.kinks($0, batch: batch).map { $0 ? 1 : 0 } } ?? []
                    })
            },
            checksSlot: { !($0.hasPrefix("blocks") && $0.hasSuffix(".bias") && !isBatchNorm($0)) }, name: "ResNet")
    }

    // MARK: Learning

    func testTinyResNetLearnsWhichHalfIsBright() {
        let network = ResNetArchitecture(
            inputShape: [1, 8, 8], stemChannels: 4, channels: [4, 8], exitsAfter: [1, 2], classes: 2
        ).build()
        network.initialize(seed: 3)
        let losses = BrightHalfProblem.assertLearns(network)
        let first = losses.prefix(8).reduce(0, +) / 8
        let last = losses.suffix(8).reduce(0, +) / 8
        XCTAssertLessThan(last, first / 4, "the summed exit losses fall: \(first) -> \(last)")
    }
}
