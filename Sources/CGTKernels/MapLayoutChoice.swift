import CGTDNNL
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The one place that decides which layout convolutional trunks keep their maps in on this CPU.
///
/// oneDNN has JIT kernels for a layout only where its kernels for the CPU's instruction set take
/// it, and silently runs its reference code (hundreds of times slower) otherwise: `nChw16c` has
/// JIT convolutions on AVX-512 only, `nChw8c` is the block of its AVX2 kernels, and `nhwc` has
/// kernels on both. So the layouts are ranked by the instruction set oneDNN dispatches to
/// (`dnnl_get_effective_cpu_isa`, which `ONEDNN_MAX_CPU_ISA` lowers), and each convolution takes
/// the first of them whose primitives oneDNN implements with JIT kernels, checked by name
/// (`DNNLRuntime.isReference`) on a probe of the same shapes. Why each ranking: see
/// `preference(vectorBits:trunk:)`.
public enum MapLayoutChoice {
    /// The environment variable that puts one layout first (for measurements):
    /// channels-first, channels-last, blocked8 or blocked16.
    public static let overrideVariable = "CGT_MAP_LAYOUT"

    /// The names `CGT_MAP_LAYOUT` takes.
    public static let names: [(name: String, layout: MapLayout)] = [
        ("channels-first", .channelsFirst), ("channels-last", .channelsLast), ("blocked8", .blocked8),
        ("blocked16", .blocked16),
    ]

    /// The layout `CGT_MAP_LAYOUT` names, nil when it is unset, or an error line when it names none.
    public static var requested: Result<MapLayout?, OverrideError> {
        guard let pointer = getenv(overrideVariable) else { return .success(nil) }
        let text = String(cString: pointer)
        guard let layout = names.first(where: { $0.name == text })?.layout else {
            return .failure(OverrideError(value: text))
        }
        return .success(layout)
    }

    /// `CGT_MAP_LAYOUT` names no layout.
    public struct OverrideError: Error, CustomStringConvertible {
        public let value: String
        public var description: String {
            "\(MapLayoutChoice.overrideVariable)='\(value)' is not a layout: use one of \(MapLayoutChoice.names.map(\.name).joined(separator: ", "))"
        }
    }

    /// The kind of network whose maps are laid out: the rankings differ between them on AVX2.
    public enum Trunk: Sendable {
        /// Convolution, BatchNorm, ReLU and pooling in a row (the paper CNN).
        case plain
        /// Residual blocks, whose sums and shortcuts read every map twice (the ResNet).
        case residual
    }

    /// The layouts to try for maps of `trunk`, best first, at the instruction set oneDNN
    /// dispatches to now, with a layout `CGT_MAP_LAYOUT` names put first.
    public static func preference(for trunk: Trunk) -> [MapLayout] {
        let ranked = preference(vectorBits: DNNLRuntime.vectorBits, trunk: trunk)
        guard case .success(let requested?) = requested else { return ranked }
        return [requested] + ranked.filter { $0 != requested }
    }

    /// The ranking for oneDNN's float32 vector width, from whole training steps of the paper CNN
    /// and the ResNet in each layout (RESULTS.md, "Layouts by instruction set").
    ///
    /// - 512 bits (AVX-512): 16-channel blocks, one register per position, on which oneDNN's
    ///   AVX-512 convolutions run fastest.
    /// - 256 bits (AVX2, AVX): 8-channel blocks for the plain CNN (the layout of oneDNN's AVX2
    ///   convolutions: a quarter more samples per second than channels-last); channels-last for
    ///   the ResNet, whose steps ran about a tenth faster although its convolutions alone took
    ///   the same time in both. `nChw16c` last: oneDNN has no AVX2 kernel for it.
    /// - narrower: channels-last, whose kernels oneDNN keeps for SSE4.1 too.
    public static func preference(vectorBits: Int, trunk: Trunk) -> [MapLayout] {
        switch (vectorBits, trunk) {
        case (512..., _): [.blocked16, .channelsLast, .blocked8]
        case (256..<512, .plain): [.blocked8, .channelsLast, .blocked16]
        case (256..<512, .residual): [.channelsLast, .blocked8, .blocked16]
        default: [.channelsLast, .blocked8, .blocked16]
        }
    }

    /// The layout of the maps that a convolution of `trunk` writes and a BatchNorm (with its
    /// ReLU) then normalises: the first layout of `preference(for:)` that admits `outputChannels` and for which
    /// every oneDNN primitive of the convolution's three passes (and their reorders), of the
    /// BatchNorm, and of `sameLayoutConvolution` (a convolution reading and writing maps of that
    /// layout, as a residual block's second) is a JIT kernel. Where no layout avoids a reference
    /// implementation, the first admitted one: the network's `referencePrimitives` then name it.
    ///
    /// The probe makes each candidate's primitives once per process (oneDNN compiles its
    /// kernels then), at a batch of `probeBatch`.
    /// - Parameter inputLayout: the layout of the convolution's input maps; nil for the candidate itself.
    public static func outputLayout(
        of trunk: Trunk, convolution geometry: ConvolutionKernels.Geometry, outputChannels: Int,
        inputLayout: MapLayout?, computesInputGradient: Bool, batchNorm: Bool,
        sameLayoutConvolution: ConvolutionKernels.Geometry? = nil
    ) -> MapLayout {
        let candidates = preference(for: trunk).filter { $0.admits(channels: outputChannels) }
        let fallback = candidates.first ?? .channelsLast
        for candidate in candidates {
            let probe = Probe(
                geometry: geometry, outputChannels: outputChannels, inputLayout: inputLayout ?? candidate,
                outputLayout: candidate, computesInputGradient: computesInputGradient, batchNorm: batchNorm,
                sameLayoutConvolution: sameLayoutConvolution, isa: DNNLRuntime.instructionSet)
            if !probe.usesReferenceCode { return candidate }
        }
        return fallback
    }

    /// The size of the batch that `outputLayout` probes with.
    static let probeBatch = 32

    /// The primitives of one candidate layout for one convolution, made to read their implementations.
    private struct Probe: Hashable {
        let geometry: ConvolutionKernels.Geometry
        let outputChannels: Int
        let inputLayout: MapLayout
        let outputLayout: MapLayout
        let computesInputGradient: Bool
        let batchNorm: Bool
        let sameLayoutConvolution: ConvolutionKernels.Geometry?
        let isa: String

        /// Whether any of its primitives is a reference implementation (or cannot be made).
        var usesReferenceCode: Bool {
            if let known = MapLayoutChoice.verdicts.withLock({ $0[self] }) { return known }
            let verdict = (try? implementations().contains(where: \.isReference)) ?? true
            MapLayoutChoice.verdicts.withLock { $0[self] = verdict }
            return verdict
        }

        private func implementations() throws -> [PrimitiveImplementation] {
            let batch = MapLayoutChoice.probeBatch
            var list = try ConvolutionPrimitives(
                geometry: geometry, outputChannels: outputChannels, batch: batch, inputLayout: inputLayout,
                outputLayout: outputLayout, inputGradient: computesInputGradient
            ).primitiveImplementations
            if batchNorm {
                list += try BatchNormPrimitives(
                    batch: batch, channels: outputChannels,
                    spatial: (geometry.outputHeight, geometry.outputWidth), layout: outputLayout, appliesReLU: true,
                    epsilon: 1e-5
                ).primitiveImplementations
            }
            if let next = sameLayoutConvolution {
                list += try ConvolutionPrimitives(
                    geometry: next, outputChannels: outputChannels, batch: batch, inputLayout: outputLayout,
                    outputLayout: outputLayout, inputGradient: true
                ).primitiveImplementations
            }
            return list
        }
    }

    /// What each probe found, so that every network of a process probes a shape once.
    private static let verdicts = Mutex<[Probe: Bool]>([:])
}
