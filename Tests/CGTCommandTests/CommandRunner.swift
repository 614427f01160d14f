import Foundation
import XCTest

/// Runs the built `cgt` binary (or mpirun with it) as a user would, and captures what it says.
struct CommandResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

enum CommandRunner {
    /// The `cgt` executable in the build products folder of the tests (or `CGT_BINARY`).
    static var cgt: String {
        if let path = ProcessInfo.processInfo.environment["CGT_BINARY"] { return path }
        let bundle = Bundle(for: Marker.self).bundleURL
        let candidates = [bundle, bundle.deletingLastPathComponent()].map { $0.appendingPathComponent("cgt").path }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
    }

    private final class Marker {}

    /// Runs `executable` with `arguments`, ending it after `timeout` seconds (a hang is a failure, not a stuck suite).
    static func run(
        _ executable: String, _ arguments: [String], timeout: TimeInterval = 120,
        environment extra: [String: String] = [:], in folder: String? = nil,
        file: StaticString = #filePath, line: UInt = #line
    ) throws -> CommandResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let folder { process.currentDirectoryURL = URL(fileURLWithPath: folder) }
        var environment = ProcessInfo.processInfo.environment
        environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        environment.merge(extra) { _, new in new }
        process.environment = environment
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Drain both pipes while the process runs, so a chatty process cannot block on a full pipe.
        let stdoutData = Drained(out)
        let stderrData = Drained(err)
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            process.terminate()
            XCTFail(
                "\(executable) \(arguments.joined(separator: " ")) did not finish within \(timeout) s", file: file,
                line: line)
        }
        process.waitUntilExit()
        return CommandResult(status: process.terminationStatus, stdout: stdoutData.text(), stderr: stderrData.text())
    }

    static func cgt(
        _ arguments: [String], environment: [String: String] = [:], in folder: String? = nil,
        file: StaticString = #filePath, line: UInt = #line
    ) throws -> CommandResult {
        try run(cgt, arguments, environment: environment, in: folder, file: file, line: line)
    }

    /// Starts `mpirun -np ranks cgt arguments...` without waiting; output goes to the given files.
    /// `environment` reaches every rank (`-x NAME`).
    static func startMPI(
        ranks: Int, _ arguments: [String], stdout: String, stderr: String, environment extra: [String: String] = [:]
    ) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/mpirun")
        process.arguments =
            ["-np", "\(ranks)", "--oversubscribe"] + extra.keys.sorted().flatMap { ["-x", $0] } + [cgt] + arguments
        var environment = ProcessInfo.processInfo.environment
        environment.merge(extra) { _, new in new }
        environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        process.environment = environment
        _ = FileManager.default.createFile(atPath: stdout, contents: nil)
        _ = FileManager.default.createFile(atPath: stderr, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: stdout))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderr))
        try process.run()
        return process
    }

    /// The process ids of the direct children of `pid` (the ranks mpirun started on this machine).
    static func children(of pid: Int32) -> [Int32] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return tasks.compactMap(Int32.init).filter { child in
            guard let stat = try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 2 && Int32(fields[1]) == pid
        }.sorted()
    }

    /// `mpirun -np ranks cgt arguments...`, oversubscribing the machine's cores.
    /// `environment` reaches every rank (`-x NAME`).
    static func mpirun(
        ranks: Int, _ arguments: [String], timeout: TimeInterval = 120, environment: [String: String] = [:],
        file: StaticString = #filePath, line: UInt = #line
    ) throws -> CommandResult {
        let exported = environment.keys.sorted().flatMap { ["-x", $0] }
        return try run(
            "/usr/bin/mpirun", ["-np", "\(ranks)", "--oversubscribe"] + exported + [cgt] + arguments, timeout: timeout,
            environment: environment, file: file, line: line)
    }
}

/// Reads a pipe to its end on a background queue.
private final class Drained: @unchecked Sendable {
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    init(_ pipe: Pipe) {
        DispatchQueue.global().async {
            self.data = pipe.fileHandleForReading.readDataToEndOfFile()
            self.done.signal()
        }
    }

    /// Waits for the end of the pipe and returns what came through it.
    func text() -> String {
        done.wait()
        return String(decoding: data, as: UTF8.self)
    }
}
