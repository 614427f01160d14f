// swift-tools-version:6.0
import PackageDescription

/// The CPU the kernels are built for, `CGT_CPU` (an LLVM CPU name):
/// - `native` (the default): the vector units of the machine that builds, AVX-512 where it has them;
/// - `x86-64-v3` (or `CGT_PORTABLE=1`): AVX2 + FMA, every x86 server CPU since 2013 (Haswell, Zen):
///   the build to copy to the nodes of a mixed cluster;
/// - `x86-64-v4`: AVX-512 (Skylake-SP and later, Zen 4 and later);
/// - `x86-64`: baseline, where `SIMD16<Float>.addingProduct` becomes one libm `fmaf` call per lane.
/// A binary started on a CPU without a feature it was built for stops with one line
/// (`_CGTCPUCheck`) instead of dying of SIGILL. `CGT_CPU=none` passes no flags at all, for a
/// package that depends on cgt (SwiftPM forbids unsafe flags in dependencies).
///
/// `-fno-math-errno` lets `Float.squareRoot()` (a C shim the standard library inlines) become
/// one vector instruction: with errno semantics every lane is a compare and a possible `sqrtf`
/// call, and Adam's update took 16 of those per vector. cgt never reads errno.
let targetCPU = Context.environment["CGT_CPU"] ?? (Context.environment["CGT_PORTABLE"] == "1" ? "x86-64-v3" : "native")
/// swiftc's `-target-cpu` takes CPU models ("native", "znver3") but not the x86-64 levels, which
/// only clang's `-march` knows; Swift's code generation takes its features from the clang
/// importer, so `-Xcc -march` alone sets both for a level.
let cpuFlags = targetCPU.hasPrefix("x86-64") ? [] : ["-target-cpu", targetCPU]
let hostVectorUnits: [SwiftSetting] =
    targetCPU == "none"
    ? [] : [.unsafeFlags(cpuFlags + ["-Xcc", "-march=\(targetCPU)", "-Xcc", "-fno-math-errno"])]
/// The C file that records which features the build was compiled for takes the same -march.
let builtFeatures: [CSetting] =
    (targetCPU == "none" ? [] : [.unsafeFlags(["-march=\(targetCPU)"])]) + [
        .define("CGT_BUILD_CPU", to: "\"\(targetCPU)\"")
    ]

let package = Package(
    name: "cgt",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "cgt", targets: ["cgt"]),
        .library(
            name: "CGT",
            targets: [
                "CGTExperiments", "CGTTraining", "CGTEvaluation", "CGTCheckpoint", "CGTJob", "CGTFiles", "CGTRandom",
                "CGTModel",
                "CGTData", "CGTKernels", "CGTDNNL", "CGTHDF5", "CGTMPI",
            ]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        // MARK: - Public API

        .target(name: "CGTDNNL", dependencies: ["CDNNL"], swiftSettings: hostVectorUnits),
        // A seedable generator whose state fits in a checkpoint: data order, initialisation, grids.
        .target(name: "CGTRandom", swiftSettings: hostVectorUnits),
        .target(
            name: "CGTKernels", dependencies: ["CGTDNNL", "CDNNL", "_CGTTargetInfo", "_CGTCPUCheck"],
            swiftSettings: hostVectorUnits),
        // Atomic file replacement, a write stopped by a signal, and the one shape of errors about a place in a file.
        .target(name: "CGTFiles", swiftSettings: hostVectorUnits),
        .target(name: "CGTHDF5", dependencies: ["CHDF5", "CGTFiles"], swiftSettings: hostVectorUnits),
        .target(name: "CGTMPI", dependencies: ["CMPI"], swiftSettings: hostVectorUnits),
        .target(
            name: "CGTData", dependencies: ["CGTFiles", "CGTHDF5", "CGTRandom", "CZlib"], swiftSettings: hostVectorUnits
        ),
        .target(name: "CGTModel", dependencies: ["CGTKernels", "CGTRandom"], swiftSettings: hostVectorUnits),
        // The top floor, each target above the ones before it: the typed job (every closed set an
        // enum, checked once) -> the run's files (checkpoints and their HDF5 layout, run and grid
        // folders, metrics.jsonl) -> evaluation (policies, exit records, routing statistics,
        // sweeps, latency, evaluating a checkpoint) -> training (the loop, the checkpoint
        // connector, the shard, the all-reduce) -> experiments (grids, reports, tables, charts,
        // benchmarks) -> the command line.
        .target(
            name: "CGTJob", dependencies: ["CGTFiles", "CGTModel", "CGTData", .product(name: "Yams", package: "Yams")],
            swiftSettings: hostVectorUnits),
        .target(
            name: "CGTCheckpoint", dependencies: ["CGTFiles", "CGTHDF5", "CGTJob", "CGTModel", "CGTData"],
            swiftSettings: hostVectorUnits),
        .target(
            name: "CGTEvaluation",
            dependencies: [
                "CGTCheckpoint", "CGTJob", "CGTModel", "CGTData", "CGTFiles", "CGTKernels", "CGTDNNL", "CGTRandom",
            ],
            swiftSettings: hostVectorUnits),
        .target(
            name: "CGTTraining",
            dependencies: [
                "CGTFiles", "CGTJob", "CGTCheckpoint", "CGTEvaluation", "CGTModel", "CGTData", "CGTRandom", "CGTHDF5",
                "CGTMPI",
                "CGTKernels", "CGTDNNL",
            ],
            swiftSettings: hostVectorUnits),
        .target(
            name: "CGTExperiments",
            dependencies: [
                "CGTFiles", "CGTTraining", "CGTEvaluation", "CGTCheckpoint", "CGTJob", "CGTModel", "CGTData",
                "CGTRandom",
                "CGTMPI", "CGTKernels", "CGTDNNL", .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: hostVectorUnits),
        .executableTarget(
            name: "cgt",
            dependencies: [
                "CGTExperiments", "CGTTraining", "CGTEvaluation", "CGTCheckpoint", "CGTJob", "CGTModel", "CGTData",
                "CGTFiles", "CGTHDF5", "CGTMPI", "CGTKernels", "CGTDNNL",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: hostVectorUnits),

        // MARK: - Implementation details

        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
        .systemLibrary(name: "CHDF5", pkgConfig: "hdf5", providers: [.apt(["libhdf5-dev"])]),
        // Debian's libdnnl-dev ships no pkg-config file; the module map names the library.
        .systemLibrary(name: "CDNNL", providers: [.apt(["libdnnl-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .target(name: "_CGTTargetInfo", cSettings: builtFeatures, swiftSettings: hostVectorUnits),
        // Compiled for baseline x86-64 (no flags): it must run on any CPU to say which feature is missing.
        .target(name: "_CGTCPUCheck", dependencies: ["_CGTTargetInfo"]),

        // MARK: - Tests

        .target(
            name: "CGTTestSupport", dependencies: ["CGTRandom", "CGTKernels", "CGTHDF5", "CGTData"],
            path: "Tests/CGTTestSupport", swiftSettings: hostVectorUnits),
        .testTarget(
            name: "CGTKernelsTests", dependencies: ["CGTRandom", "CGTKernels", "CGTDNNL", "CGTTestSupport"],
            swiftSettings: hostVectorUnits),
        .testTarget(
            name: "CGTHDF5Tests", dependencies: ["CGTFiles", "CGTHDF5", "CHDF5", "CGTTestSupport"],
            swiftSettings: hostVectorUnits),
        .testTarget(
            name: "CGTDataTests", dependencies: ["CGTData", "CGTHDF5", "CGTRandom", "CGTTestSupport", "CZlib"],
            swiftSettings: hostVectorUnits),
        .testTarget(
            name: "CGTModelTests", dependencies: ["CGTRandom", "CGTKernels", "CGTModel", "CGTTestSupport"],
            swiftSettings: hostVectorUnits),
        .testTarget(
            name: "CGTJobTests", dependencies: ["CGTJob", "CGTModel"], swiftSettings: hostVectorUnits),
        // EarlyExitInferenceTests trains the network whose real early exits it checks, so this
        // target takes CGTTraining for that fixture.
        .testTarget(
            name: "CGTEvaluationTests",
            dependencies: [
                "CGTEvaluation", "CGTCheckpoint", "CGTRandom", "CGTData", "CGTFiles", "CGTJob", "CGTModel",
                "CGTTraining", "CGTTestSupport",
            ], swiftSettings: hostVectorUnits),
        .testTarget(
            name: "CGTTrainingTests",
            dependencies: [
                "CGTData", "CGTJob", "CGTModel", "CGTEvaluation", "CGTCheckpoint", "CGTTraining", "CGTFiles",
                "CGTKernels", "CGTRandom", "CGTTestSupport",
            ], swiftSettings: hostVectorUnits),
        .testTarget(
            name: "CGTExperimentsTests",
            dependencies: [
                "CGTExperiments", "CGTTraining", "CGTEvaluation", "CGTCheckpoint", "CGTJob", "CGTFiles", "CGTRandom",
                "CGTTestSupport",
            ], swiftSettings: hostVectorUnits),
        .testTarget(
            name: "CGTCheckpointTests", dependencies: ["CGTCheckpoint", "CGTJob", "CGTModel", "CGTTestSupport"],
            swiftSettings: hostVectorUnits),
        .testTarget(name: "CGTMPITests", dependencies: ["CGTMPI"], swiftSettings: hostVectorUnits),
        .testTarget(
            name: "CGTCommandTests", dependencies: ["CGTTestSupport", "CGTHDF5", "CGTData", "CGTKernels", "CGTRandom"],
            exclude: ["Corpus"], swiftSettings: hostVectorUnits),
    ],
    swiftLanguageModes: [.v5]
)
