import ArgumentParser
import CGTCheckpoint
import CGTDNNL
import CGTHDF5
import CGTKernels
import CGTTraining
import Foundation

/// `cgt`: train early-exit networks with Confidence-Gated Training.
@main
struct CGTCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cgt",
        abstract: "Train early-exit neural networks with Confidence-Gated Training, data-parallel over MPI.",
        discussion: """
            Datasets and checkpoints are HDF5 files (layout: hdf5_data/README.md).
            Run with mpirun for several ranks: mpirun -np 2 cgt train JOB.yaml
            """,
        version: CGTVersion.current,
        subcommands: [
            TrainCommand.self, EvalCommand.self, SynthCommand.self, PrepareCommand.self, InspectCommand.self,
            BenchCommand.self, TableCommand.self, GridCommand.self, ReportCommand.self,
        ])

    /// Parses and runs the command, after the process-wide settings every command needs
    /// (one oneDNN thread per rank until a job says otherwise, HDF5 without its exit-time cleanup).
    static func main() {
        DNNLRuntime.setThreadCount(1)
        HDF5Library.skipCleanupAtExit()
        if case .failure(let error) = MapLayoutChoice.requested {
            FileHandle.standardError.write(Data("cgt: error: \(error)\n".utf8))
            Foundation.exit(1)
        }
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            // Help and version keep ArgumentParser's output; a usage error is one line and status 1
            // like every other error (failures of the commands themselves are printed already).
            let code = exitCode(for: error)
            guard code == .validationFailure else { exit(withError: error) }
            let message =
                fullMessage(for: error).split(whereSeparator: \.isNewline).first.map(String.init) ?? "\(error)"
            let stripped = message.hasPrefix("Error: ") ? String(message.dropFirst("Error: ".count)) : message
            FileHandle.standardError.write(Data("cgt: error: \(stripped) (see cgt help)\n".utf8))
            Foundation.exit(1)
        }
    }
}
