import Foundation
import XCTest

/// cgt is fast on every x86 CPU a cluster has: no built-in model runs on oneDNN's reference
/// code at any instruction-set level from AVX2 up to this CPU's, and a build copied to a CPU
/// without a feature it was compiled for stops with one line instead of SIGILL.
///
/// oneDNN falls back to its reference implementations silently, hundreds of times slower, when
/// its kernels for the CPU take no layout cgt asked for; every model still computes the right
/// numbers, so only the implementations' names show it (never the time, which a test must not
/// read). `ONEDNN_MAX_CPU_ISA` makes oneDNN dispatch as on a lesser CPU, so an AVX-512 machine
/// checks the AVX2 path too.
final class InstructionSetTests: XCTestCase {
    /// This CPU's feature flags, as the kernel lists them in /proc/cpuinfo ("avx2", "avx512f").
    private func cpuFlags() throws -> Set<String> {
        let cpuinfo = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        let line = cpuinfo.split(separator: "\n").first { $0.hasPrefix("flags") } ?? ""
        return Set(line.split(separator: " ").map(String.init))
    }

    /// The `ONEDNN_MAX_CPU_ISA` levels from AVX2 up to what this CPU has, with the name
    /// `cgt bench` reports for each (nil for the CPU's own top level).
    private func levels() throws -> [(variable: String, reported: String?)] {
        let flags = try cpuFlags()
        var levels: [(String, String?)] = []
        if flags.isSuperset(of: ["avx2", "fma"]) { levels.append(("AVX2", "avx2")) }
        if flags.isSuperset(of: ["avx512f", "avx512bw", "avx512dq", "avx512vl"]) {
            levels.append(("AVX512_CORE", "avx512_core"))
        }
        levels.append(("ALL", nil))
        return levels
    }

    private struct Listing: Decodable {
        struct Primitive: Decodable {
            var layer: String
            var pass: String
            var implementation: String
        }
        var instructionSet: String
        var layouts: [String: String]
        var training: [Primitive]
        var inference: [Primitive]
    }

    func testNoBuiltInModelRunsOnReferenceKernelsAtAnyLevelFromAVX2Up() throws {
        let levels = try levels()
        try XCTSkipIf(
            levels.count == 1, "this CPU has no AVX2: cgt's kernels need it (CGT_CPU=x86-64 builds run slowly)")
        for (variable, reported) in levels {
            for model in ["cnn", "resnet"] {
                for batch in ["128", "64"] {
                    let label = "\(model) at batch \(batch), ONEDNN_MAX_CPU_ISA=\(variable)"
                    let result = try CommandRunner.cgt(
                        ["bench", "--model", model, "--batch", batch, "--primitives", "--json"],
                        environment: ["ONEDNN_MAX_CPU_ISA": variable])
                    XCTAssertEqual(result.status, 0, "\(label): \(result.stderr)")
                    guard result.status == 0 else { continue }
                    let listing = try JSONDecoder().decode(Listing.self, from: Data(result.stdout.utf8))
                    if let reported { XCTAssertEqual(listing.instructionSet, reported, label) }
                    // Every convolution of the trunk and its passes are listed, at training and inference sizes.
                    XCTAssertGreaterThan(listing.layouts.count, 2, label)
                    for pass in ["forward", "backward weights", "backward data"] {
                        XCTAssertTrue(listing.training.contains { $0.pass == pass }, "\(label): no \(pass)")
                    }
                    XCTAssertTrue(listing.inference.contains { $0.pass == "forward" }, label)
                    let reference = (listing.training + listing.inference).filter { primitive in
                        primitive.implementation.split(whereSeparator: { $0 == ":" || $0 == "_" }).contains("ref")
                    }
                    XCTAssertEqual(
                        reference.map { "\($0.layer) \($0.pass): \($0.implementation)" }, [],
                        "\(label): reference implementations (layouts \(listing.layouts))")
                }
            }
        }
    }

    /// The build's CPU check, compiled as cgt compiles it (the feature record with a -march,
    /// the check for baseline x86-64) into a program built for a feature this CPU lacks: it
    /// must stop with exit status 1 and one line naming the feature, not die of SIGILL.
    func testABuildForAFeatureTheCPULacksStopsWithOneLine() throws {
        let flags = try cpuFlags()
        let candidates: [(march: String, flag: String, name: String)] = [
            ("-mavx512f", "avx512f", "AVX-512F"), ("-mavx512fp16", "avx512_fp16", "AVX-512 FP16"),
        ]
        guard let lacking = candidates.first(where: { !flags.contains($0.flag) }) else {
            throw XCTSkip("this CPU has every feature the check knows")
        }
        let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Sources")
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("cgt-cpu-check-\(getpid())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let main = folder.appendingPathComponent("main.c")
        try """
        #include <immintrin.h>
        #include <stdio.h>
        int main(void) { volatile __m512 x = _mm512_set1_ps(1.0f); (void)x; puts("ran"); return 0; }
        """.write(to: main, atomically: true, encoding: .utf8)
        let program = folder.appendingPathComponent("checked").path
        let info = sources.appendingPathComponent("_CGTTargetInfo")
        let check = sources.appendingPathComponent("_CGTCPUCheck")
        let includes = [
            "-I", info.appendingPathComponent("include").path, "-I", check.appendingPathComponent("include").path,
        ]
        // As Package.swift builds them: the feature record with the build's -march, the check
        // with none; the program's own code uses the feature, as a kernel would.
        let steps: [[String]] = [
            includes + [
                "-DCGT_BUILD_CPU=\"test\"", lacking.march, "-c", info.appendingPathComponent("TargetInfo.c").path,
                "-o", folder.appendingPathComponent("info.o").path,
            ],
            includes + [
                "-c", check.appendingPathComponent("CPUCheck.c").path, "-o",
                folder.appendingPathComponent("check.o").path,
            ],
            [
                "-mavx512f", main.path, folder.appendingPathComponent("info.o").path,
                folder.appendingPathComponent("check.o").path, "-o", program,
            ],
        ]
        for arguments in steps {
            let compile = try CommandRunner.run("/usr/bin/env", ["clang", "-O1"] + arguments)
            XCTAssertEqual(compile.status, 0, compile.stderr)
            guard compile.status == 0 else { return }
        }
        let result = try CommandRunner.run(program, [])
        XCTAssertEqual(result.status, 1, "stdout: \(result.stdout) stderr: \(result.stderr)")
        XCTAssertEqual(result.stdout, "")
        let lines = result.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains(lacking.name), result.stderr)
        XCTAssertTrue(result.stderr.contains("CGT_CPU=x86-64-v3"), result.stderr)
    }
}
