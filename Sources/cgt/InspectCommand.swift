import ArgumentParser
import CGTCheckpoint
import CGTData
import CGTExperiments
import CGTHDF5
import CGTJob
import CGTTraining
import Foundation

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract:
            "Describe a dataset file (shapes, class counts per split, normalisation, provenance) or a checkpoint (model, exit policy, FLOPs per exit)."
    )

    @Argument(help: "The dataset or checkpoint file (.h5).")
    var file: String

    func run() throws {
        try reportingFailures {
            if Checkpoint.isCheckpoint(at: file) {
                print(try Self.renderCheckpoint(try Checkpoint.read(from: file), path: file))
                return
            }
            print(Self.render(try DatasetSummary.read(file)))
            // Every value is read and checked as training would, so inspect passes only what trains.
            let reader = try DatasetReader(path: file)
            defer { try? reader.close() }
            try reader.checkAllValues()
            print("every label and feature value checked")
        }
    }

    /// The model a checkpoint holds, its exit policy and what each exit costs (FLOPs counted
    /// as in `hdf5_data/README.md`, "FLOP counts").
    static func renderCheckpoint(_ stored: Checkpoint, path: String) throws -> String {
        let job = stored.job
        let network = job.makeNetwork(featureShape: stored.featureShape, classes: stored.classNames.count)
        let policy = stored.exitPolicy
        var lines = [
            "\(path): cgt checkpoint of job '\(job.name)', epoch \(stored.epoch), step \(stored.globalStep)",
            "model: \(job.model.kind), \(network.store.parameterCount) parameters, input \(stored.featureShape), \(stored.classNames.count) classes; method \(job.method.name)",
            "exit policy: \(policy.criterion.rawValue), thresholds \(policy.thresholds), fallback \(policy.fallback.rawValue)",
        ]
        if let groups = stored.classGroups {
            lines.append(
                "classynet groups: "
                    + groups.groups.enumerated().map { "exit \($0.offset + 1): \($0.element.map { "\($0)" } ?? "all")" }
                    .joined(separator: ", "))
        }
        let costs = network.exitCosts()
        let full = network.fullNetworkCost
        var table = [["exit", "after block", "FLOPs to answer", "relative cost"]]
        for (e, cost) in costs.enumerated() {
            table.append([
                "\(e + 1)", "\(network.exitBlocks[e] + 1)", "\(cost)",
                String(format: "%.3f", Double(cost) / Double(full)),
            ])
        }
        lines +=
            ["", "inference FLOPs per sample (full network without early exits: \(full)):"]
            + aligned(table, rightAligned: [0, 1, 2, 3])
        return lines.joined(separator: "\n")
    }

    static func render(_ summary: DatasetSummary) -> String {
        var lines = [
            "\(summary.path): \(byteText(summary.fileSize)), layout version \(summary.layoutVersion)",
            "\(summary.classNames.count) classes, feature shape \(summary.featureShape)",
            "",
        ]
        var table = [["split", "samples", "x", "y", "x storage", "source_index"]]
        for split in summary.splits {
            let filters = split.filters.isEmpty ? "uncompressed" : split.filters.joined(separator: " + ")
            let storage =
                split.chunkRows.map { "chunks of \($0) rows (\(byteText(split.chunkBytes ?? 0))), \(filters)" }
                ?? "contiguous"
            table.append([
                split.name.rawValue, "\(split.count)", "\(split.featureType) \(split.featureShape)",
                "\(split.labelType) [\(split.count)]",
                storage, split.hasSourceIndex ? "yes" : "no",
            ])
        }
        lines += aligned(table, rightAligned: [1])
        if summary.splits.contains(where: { $0.featureType == "uint8" }) {
            lines.append(
                "features stored as uint8 (layout version 2): read as (x - normalization_offset[c]) / normalization_scale[c] per channel c"
            )
        }
        lines.append("")
        var counts = [["id", "class"] + summary.splits.map(\.name.rawValue)]
        for (id, name) in summary.classNames.enumerated() {
            counts.append(["\(id)", name] + summary.splits.map { "\($0.classCounts[id])" })
        }
        lines += aligned(counts, rightAligned: Set([0] + summary.splits.indices.map { $0 + 2 }))
        let groups: [(String, (String) -> Bool)] = [
            ("normalisation", { $0.hasPrefix("normalization") }),
            ("split", { $0.hasPrefix("split_") }),
            ("provenance", { ["source_", "command_line", "cgt_version", "created_at"].contains(where: $0.hasPrefix) }),
        ]
        var shown: Set<String> = []
        for (title, belongs) in groups + [("other attributes", { _ in true })] {
            let members = summary.attributes.filter { belongs($0.name) && !shown.contains($0.name) }
            guard !members.isEmpty else { continue }
            lines += ["", "\(title):"] + members.map { "  \($0.name): \($0.value)" }
            shown.formUnion(members.map(\.name))
        }
        return lines.joined(separator: "\n")
    }

    private static func aligned(_ rows: [[String]], rightAligned: Set<Int>) -> [String] {
        let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { column, cell in
                let padding = String(repeating: " ", count: widths[column] - cell.count)
                return rightAligned.contains(column) ? padding + cell : cell + padding
            }.joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }
    }

    private static func byteText(_ count: Int) -> String {
        count >= 1 << 20
            ? String(format: "%.1f MiB", Double(count) / Double(1 << 20))
            : count >= 1 << 10 ? String(format: "%.1f KiB", Double(count) / Double(1 << 10)) : "\(count) bytes"
    }
}
