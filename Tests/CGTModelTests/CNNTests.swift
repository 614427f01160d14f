import CGTKernels
import CGTRandom
import CGTTestSupport
import XCTest

@testable import CGTModel

/// The paper's Fashion-MNIST CNN: key paths, FLOP counts by hand, the gradient of the whole
/// network against finite differences, and learning a separable image problem.
final class CNNTests: XCTestCase {
    func testKeyNamesFollowPyTorch() {
        let network = CNNArchitecture().build()
        var expected: [String] = []
        for b in 0..<3 {
            expected += [
                "blocks.\(b).conv.weight", "blocks.\(b).conv.bias", "blocks.\(b).bn.weight", "blocks.\(b).bn.bias",
                "exits.\(b).linear.weight", "exits.\(b).linear.bias",
            ]
        }
        XCTAssertEqual(network.store.parameterSlots.map(\.name), expected)
        XCTAssertEqual(
            network.store.bufferSlots.map(\.name),
            (0..<3).flatMap { ["blocks.\($0).bn.running_mean", "blocks.\($0).bn.running_var"] })
        let shapes = Dictionary(uniqueKeysWithValues: network.store.parameterSlots.map { ($0.name, $0.shape) })
        XCTAssertEqual(shapes["blocks.0.conv.weight"], [32, 1, 3, 3])
        XCTAssertEqual(shapes["blocks.1.conv.weight"], [64, 32, 3, 3])
        XCTAssertEqual(shapes["blocks.2.conv.weight"], [128, 64, 3, 3])
        XCTAssertEqual(shapes["blocks.2.conv.bias"], [128])
        XCTAssertEqual(shapes["blocks.1.bn.weight"], [64])
        XCTAssertEqual(shapes["exits.0.linear.weight"], [10, 32])
        XCTAssertEqual(shapes["exits.2.linear.weight"], [10, 128])
        XCTAssertEqual(network.store.bufferSlots.first { $0.name == "blocks.2.bn.running_var" }?.shape, [128])
        // PyTorch's Sequential(conv, bn, relu, pool): the ReLU, which has no parameters, runs inside BatchNorm's pass.
        XCTAssertEqual(
            network.blocks.map { $0.layers.map(\.name) }, Array(repeating: ["conv", "bn", "pool"], count: 3))
        XCTAssertTrue(network.batchNormLayers.allSatisfy(\.appliesReLU))
        XCTAssertEqual(network.exits.map { $0.layers.map(\.name) }, Array(repeating: ["gap", "linear"], count: 3))
        XCTAssertEqual(network.blocks.map(\.outputShape), [[32, 14, 14], [64, 7, 7], [128, 3, 3]])
        XCTAssertEqual(network.exitBlocks, [0, 1, 2])
        XCTAssertEqual(network.batchNormLayers.map(\.inputShape), [[32, 28, 28], [64, 14, 14], [128, 7, 7]])
        // Parameters: 32 * 9 + 32 + 64 | 64 * 288 + 64 + 128 | 128 * 576 + 128 + 256 | heads 330, 650, 1_290.
        XCTAssertEqual(network.store.parameterCount, 384 + 18_624 + 74_112 + 330 + 650 + 1_290)
    }

    func testExitsFollowTheListedBlocks() {
        let network = CNNArchitecture(
            inputShape: [3, 16, 16], channels: [4, 6, 8, 10], exitsAfter: [2, 4], classes: 5
        ).build()
        XCTAssertEqual(network.exitBlocks, [1, 3])
        XCTAssertEqual(network.exits.map(\.inputCount), [6 * 4 * 4, 10 * 1 * 1])
        XCTAssertEqual(
            network.store.parameterSlots.filter { $0.name.hasPrefix("exits") }.map(\.name),
            ["exits.0.linear.weight", "exits.0.linear.bias", "exits.1.linear.weight", "exits.1.linear.bias"])
        let plain = CNNArchitecture(channels: [8], exitsAfter: [1], batchNorm: false).build()
        XCTAssertEqual(plain.blocks[0].layers.map(\.name), ["conv", "relu", "pool"])
    }

    func testPaperCNNFLOPsByHand() {
        let network = CNNArchitecture().build()
        // Block 0 on 28x28: conv 2 * 1 * 9 * 32 * 784 + 32 * 784 = 451_584 + 25_088 = 476_672;
        //   BatchNorm 2 * 25_088 = 50_176; ReLU 25_088; pool 3 * 32 * 14 * 14 = 18_816      -> 570_752
        // Block 1 on 14x14: conv 2 * 32 * 9 * 64 * 196 + 64 * 196 = 7_225_344 + 12_544 = 7_237_888;
        //   BatchNorm 25_088; ReLU 12_544; pool 3 * 64 * 7 * 7 = 9_408                      -> 7_284_928
        // Block 2 on 7x7: conv 2 * 64 * 9 * 128 * 49 + 128 * 49 = 7_225_344 + 6_272 = 7_231_616;
        //   BatchNorm 12_544; ReLU 6_272; pool 3 * 128 * 3 * 3 = 3_456                      -> 7_253_888
        XCTAssertEqual(network.blocks.map(\.inferenceFLOPs), [570_752, 7_284_928, 7_253_888])
        XCTAssertEqual(476_672 + 50_176 + 25_088 + 18_816, 570_752)
        XCTAssertEqual(7_237_888 + 25_088 + 12_544 + 9_408, 7_284_928)
        XCTAssertEqual(7_231_616 + 12_544 + 6_272 + 3_456, 7_253_888)
        // Heads: average pool 1 per input, then Linear 2 * C * 10 + 10.
        // 32 * 196 + 650 = 6_922; 64 * 49 + 1_290 = 4_426; 128 * 9 + 2_570 = 3_722.
        XCTAssertEqual(network.exits.map(\.inferenceFLOPs), [6_922, 4_426, 3_722])
        // Exit costs: blocks up to the exit plus every head on the way.
        // 570_752 + 6_922 = 577_674; + 7_284_928 + 4_426 = 7_867_028; + 7_253_888 + 3_722 = 15_124_638.
        XCTAssertEqual(network.exitCosts(), [577_674, 7_867_028, 15_124_638])
        // Without early exits: every block and the last head.
        XCTAssertEqual(network.fullNetworkCost, 570_752 + 7_284_928 + 7_253_888 + 3_722)
    }

    // MARK: Gradient of the whole network

    func testNetworkGradientMatchesFiniteDifferences() {
        // Channel counts that fill no block: channels-last maps.
        checkNetworkGradient(
            CNNArchitecture(inputShape: [1, 12, 12], channels: [4, 6, 8], exitsAfter: [1, 2, 3], classes: 3))
    }

    func testBlockedNetworkGradientMatchesFiniteDifferences() {
        // Multiples of 16: blocked maps, the paper CNN's layout.
        checkNetworkGradient(
            CNNArchitecture(inputShape: [1, 8, 8], channels: [16, 16], exitsAfter: [1, 2], classes: 3))
    }

    private func checkNetworkGradient(
        _ architecture: CNNArchitecture, file: StaticString = #filePath, line: UInt = #line
    ) {
        let batch = 2
        let network = architecture.build()
        network.initialize(seed: 5)
        network.reserve(maxBatch: batch)
        ImageNetworkGradientCheck.perturbBatchNorm(network) { $0.contains(".bn.") }
        // The step sits between two errors: at 5e-3 a third of the parameters move some ReLU input or
        // pool window across a kink; at 1e-3 the Float32 rounding of the forward pass, divided by the
        // step, already reaches 1e-5 (measured), as large as the smallest BatchNorm-bias entries.
        // The block convolutions' biases are left to the whole-vector check: BatchNorm cancels them.
        ImageNetworkGradientCheck.assertMatches(
            network, batch: batch, classes: architecture.classes,
            lambdas: Array([0.5, 0.3, 0.2].suffix(architecture.exitsAfter.count)),
            kinkPattern: {
                ImageNetworkGradientCheck.kinkPattern(network, $0, batch: batch) {
                    $0 is ReLU || ($0 as? BatchNorm)?.appliesReLU == true
                }
            },
            checksSlot: { !($0.hasPrefix("blocks") && $0.hasSuffix("conv.bias")) }, name: "CNN", file: file, line: line)
    }

    // MARK: Learning

    func testTinyCNNLearnsWhichHalfIsBright() {
        let network = CNNArchitecture(inputShape: [1, 8, 8], channels: [4, 8], exitsAfter: [1, 2], classes: 2).build()
        network.initialize(seed: 3)
        BrightHalfProblem.assertLearns(network)
    }
}
