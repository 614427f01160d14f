import ArgumentParser
import CGTData
import Foundation

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Describe a dataset file: shapes, dtypes and class counts per split, normalisation, provenance.")

    @Argument(help: "The dataset file (.h5).")
    var file: String

    func run() throws {
        do {
            print(Self.render(try DatasetSummary.read(file)))
        } catch {
            throw reportFailure(error)
        }
    }

    static func render(_ summary: DatasetSummary) -> String {
        var lines = [
            "\(summary.path): \(byteText(summary.fileSize)), layout version \(summary.layoutVersion)",
            "\(summary.classNames.count) classes, feature shape \(summary.featureShape)",
            "",
        ]
        var table = [["split", "samples", "x", "y", "x storage", "source_index"]]
        for split in summary.splits {
            let storage = split.chunkRows.map { "chunks of \($0) rows, \(split.filters.joined(separator: " + "))" } ?? "contiguous"
            table.append([split.name, "\(split.count)", "\(split.featureType) \(split.featureShape)", "\(split.labelType) [\(split.count)]",
                          storage, split.hasSourceIndex ? "yes" : "no"])
        }
        lines += aligned(table, rightAligned: [1])
        lines.append("")
        var counts = [["id", "class"] + summary.splits.map(\.name)]
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
        count >= 1 << 20 ? String(format: "%.1f MiB", Double(count) / Double(1 << 20))
            : count >= 1 << 10 ? String(format: "%.1f KiB", Double(count) / Double(1 << 10)) : "\(count) bytes"
    }
}
