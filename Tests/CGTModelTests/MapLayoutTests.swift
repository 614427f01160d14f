import CGTKernels
import CGTTestSupport
import XCTest

@testable import CGTModel

/// Layers that read `[C, H, W]` maps compute the same thing in every `MapLayout`: the
/// channels-first versions are checked against references and finite differences elsewhere,
/// so here the other layouts' outputs and gradients must be theirs with the maps permuted.
final class MapLayoutTests: XCTestCase {
    // Channel counts with a vector tail (channels-last) and of two blocks (blocked); an odd
    // side, so pooling drops a row.
    let height = 5, width = 6, batch = 3
    let layouts: [(MapLayout, channels: Int)] = [(.channelsLast, 19), (.blocked8, 24), (.blocked16, 32)]

    private func assertSameInEveryLayout(
        _ make: (MapLayout, Int) -> Layer, outputIsMap: Bool = true,
        _ label: String, file: StaticString = #filePath, line: UInt = #line
    ) {
        for (layout, channels) in layouts {
            assertSame(
                make(.channelsFirst, channels), make(layout, channels), layout: layout, outputIsMap: outputIsMap,
                "\(label), \(layout)", file: file, line: line)
        }
    }

    private func assertSame(
        _ reference: Layer, _ permuted: Layer, layout: MapLayout, outputIsMap: Bool,
        _ label: String, file: StaticString, line: UInt
    ) {
        let first = LayerHarness(reference, batch: batch, seed: 3)
        let last = LayerHarness(permuted, batch: batch, seed: 3)
        let shape = first.layer.outputShape
        func toLast(_ values: [Float], _ s: [Int]) -> [Float] {
            MapLayout.channelsFirst.converted(values, to: layout, channels: s[0], height: s[1], width: s[2])
        }
        let x = Fixtures.normals(batch * first.layer.inputCount, seed: 12)
        let dy = Fixtures.normals(batch * first.layer.outputCount, seed: 13)
        let context = ForwardContext(mode: .training)
        let y = first.forward(x, context: context)
        let dx = first.gradients(input: x, outputGradient: dy, context: context)
        let xLast = toLast(x, first.layer.inputShape)
        let yLast = last.forward(xLast, context: context)
        let dxLast = last.gradients(
            input: xLast, outputGradient: outputIsMap ? toLast(dy, shape) : dy, context: context)
        assertAllClose(
            yLast, outputIsMap ? toLast(y, shape) : y, relative: 1e-5, absolute: 1e-6, "y, \(label)", file: file,
            line: line)
        assertAllClose(
            dxLast, toLast(dx, first.layer.inputShape), relative: 1e-4, absolute: 1e-6, "dx, \(label)", file: file,
            line: line)
        assertAllClose(
            Array(last.store.gradients), Array(first.store.gradients), relative: 1e-4, absolute: 1e-6,
            "parameter gradients, \(label)", file: file, line: line)
        assertAllClose(
            Array(last.store.buffers), Array(first.store.buffers), relative: 1e-5, absolute: 1e-6,
            "running statistics, \(label)", file: file, line: line)
        // Inference reads what training left (BatchNorm's running statistics).
        let inference = ForwardContext(mode: .inference)
        let yInference = first.forward(x, context: inference)
        assertAllClose(
            last.forward(xLast, context: inference), outputIsMap ? toLast(yInference, shape) : yInference,
            relative: 1e-5, absolute: 1e-6, "inference y, \(label)", file: file, line: line)
    }

    func testBatchNormInEveryLayout() {
        assertSameInEveryLayout({ BatchNorm(shape: [$1, self.height, self.width], layout: $0) }, "batch norm")
        assertSameInEveryLayout(
            { BatchNorm(shape: [$1, self.height, self.width], layout: $0, appliesReLU: true) }, "batch norm + ReLU")
    }

    func testMaxPoolInEveryLayout() {
        assertSameInEveryLayout({ MaxPool2D(shape: [$1, self.height, self.width], layout: $0) }, "max pool")
    }

    func testGlobalAveragePoolInEveryLayout() {
        assertSameInEveryLayout(
            { GlobalAveragePool(shape: [$1, self.height, self.width], layout: $0) }, outputIsMap: false,
            "global average")
    }

    func testBlockedOffsetsAndConversions() {
        // Value (c, y, x) of a 32 x 2 x 3 map: block c / 16, then position, then lane c % 16.
        XCTAssertEqual(
            MapLayout.blocked16.offset(channel: 17, y: 1, x: 2, channels: 32, height: 2, width: 3),
            ((1 * 2 + 1) * 3 + 2) * 16 + 1)
        XCTAssertEqual(
            MapLayout.channelsLast.offset(channel: 17, y: 1, x: 2, channels: 32, height: 2, width: 3),
            (1 * 3 + 2) * 32 + 17)
        let values = Fixtures.normals(2 * 32 * 6, seed: 4)
        for layout in MapLayout.allCases {
            let there = MapLayout.channelsFirst.converted(values, to: layout, channels: 32, height: 2, width: 3)
            assertExactlyEqual(
                layout.converted(there, to: .channelsFirst, channels: 32, height: 2, width: 3), values, "\(layout)")
        }
        XCTAssertEqual(
            MapLayout.blocked8.offset(channel: 17, y: 1, x: 2, channels: 32, height: 2, width: 3),
            ((2 * 2 + 1) * 3 + 2) * 8 + 1)
        XCTAssertFalse(MapLayout.blocked16.admits(channels: 24))
        XCTAssertTrue(MapLayout.blocked8.admits(channels: 24))
        XCTAssertFalse(MapLayout.blocked8.admits(channels: 12))
    }

    func testLayoutsAreRankedByTheInstructionSet() {
        // oneDNN's JIT convolutions take 16-channel blocks on AVX-512 only; on AVX2 8-channel
        // blocks or channels-last, whichever the trunk measured faster with.
        XCTAssertEqual(MapLayoutChoice.preference(vectorBits: 512, trunk: .plain).first, .blocked16)
        XCTAssertEqual(MapLayoutChoice.preference(vectorBits: 512, trunk: .residual).first, .blocked16)
        XCTAssertEqual(MapLayoutChoice.preference(vectorBits: 256, trunk: .plain).first, .blocked8)
        XCTAssertEqual(MapLayoutChoice.preference(vectorBits: 256, trunk: .residual).first, .channelsLast)
        XCTAssertEqual(MapLayoutChoice.preference(vectorBits: 256, trunk: .plain).last, .blocked16)
        XCTAssertEqual(MapLayoutChoice.preference(vectorBits: 128, trunk: .plain).first, .channelsLast)
        for bits in [128, 256, 512] {
            for trunk in [MapLayoutChoice.Trunk.plain, .residual] {
                XCTAssertEqual(
                    Set(MapLayoutChoice.preference(vectorBits: bits, trunk: trunk)),
                    [.channelsLast, .blocked8, .blocked16], "\(bits) bits")
            }
        }
    }

    func testTheWarningNamesTheFirstReferencePrimitiveAndCountsTheRest() {
        let jit = PrimitiveImplementation(layer: "blocks.1.conv", pass: "forward", implementation: "jit:avx2")
        XCTAssertNil(PrimitiveImplementation.referenceWarning([jit]))
        let warning = PrimitiveImplementation.referenceWarning([
            jit, PrimitiveImplementation(layer: "blocks.2.conv", pass: "backward weights", implementation: "ref:any"),
            PrimitiveImplementation(layer: "blocks.2.bn", pass: "forward", implementation: "bnorm_ref:any"),
        ])
        XCTAssertNotNil(warning)
        XCTAssertTrue(warning?.contains("blocks.2.conv backward weights (ref:any) and 1 more") ?? false, warning ?? "")
        XCTAssertFalse(warning?.contains("\n") ?? true, "one line")
        XCTAssertTrue(warning?.contains("cgt bench --primitives") ?? false, warning ?? "")
    }

    func testReferenceImplementationsAreRecognisedByName() {
        for name in ["ref:any", "bnorm_ref:any", "ref_fused_convolution:any", "ref_sum:any"] {
            XCTAssertTrue(PrimitiveImplementation(pass: "forward", implementation: name).isReference, name)
        }
        for name in ["jit:avx2", "bnorm_tbb_jit:avx2", "jit_1x1:avx512_core", "gemm:jit", "jit:uni", "simple:any"] {
            XCTAssertFalse(PrimitiveImplementation(pass: "forward", implementation: name).isReference, name)
        }
    }

    func testTheCNNTrunkKeepsEachConvolutionsLayoutAfterItsInput() {
        let network = CNNArchitecture(
            inputShape: [3, 8, 8], channels: [32, 6, 16], exitsAfter: [1, 2, 3], classes: 2
        ).build()
        let layers = network.blocks.flatMap(\.layers)
        let convolutions = layers.compactMap { $0 as? Conv2D }
        let chosen = convolutions.map(\.outputLayout)
        XCTAssertEqual(convolutions.first?.inputLayout, .channelsFirst)
        XCTAssertEqual(convolutions.dropFirst().map(\.inputLayout), Array(chosen.dropLast()))
        // 6 channels fill no block of either width: channels-last on every CPU.
        XCTAssertEqual(chosen[1], .channelsLast)
        XCTAssertTrue(chosen[2].admits(channels: 16))
        XCTAssertEqual(layers.compactMap { ($0 as? MaxPool2D)?.layout }, chosen)
        XCTAssertEqual(layers.compactMap { ($0 as? BatchNorm)?.layout }, chosen)
        XCTAssertEqual(
            network.exits.flatMap(\.layers).compactMap { ($0 as? GlobalAveragePool)?.layout }, chosen)
        network.reserve(maxBatch: 4)
        XCTAssertEqual(network.referencePrimitives(batch: 4), [])
    }

    func testThePaperCNNTakesTheInstructionSetsFirstLayoutAfterItsFirstBlock() {
        // The first convolution reads a one-channel image: oneDNN's AVX2 kernels have no
        // backward-weights pass from it into 8-channel blocks, so there the probe moves it to
        // channels-last; the deeper ones run in the ISA's first choice.
        let network = CNNArchitecture().build()
        let convolutions = network.blocks.flatMap(\.layers).compactMap { $0 as? Conv2D }
        let first = MapLayoutChoice.preference(for: .plain).first
        XCTAssertEqual(convolutions.dropFirst().map(\.outputLayout), [first, first])
        network.reserve(maxBatch: 8)
        XCTAssertEqual(network.referencePrimitives(batch: 8), [])
    }
}
