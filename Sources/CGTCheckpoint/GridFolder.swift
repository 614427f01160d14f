import Foundation

/// The folder a grid writes: one run folder per trial and the grid's own files.
///
/// ```
/// <grid>/grid.json            which grid the folder holds (its trials), for --resume
/// <grid>/grid.yaml            the grid file as given
/// <grid>/trial-NNN/           a run folder per trial (`RunDirectory`), with status.json
/// <grid>/leaderboard.csv, .json, .md   the trials ranked
/// <grid>/pareto.svg, pareto.csv        accuracy against cost
/// <grid>/report.html          the grid's page, linking each trial's
/// ```
public struct GridFolder: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    public var manifestFile: String { "\(path)/grid.json" }
    public var gridFile: String { "\(path)/grid.yaml" }
    public func trial(_ name: String) -> RunDirectory { RunDirectory(path: "\(path)/\(name)") }
    /// The folder name of trial `index`: "trial-007".
    public static func trialName(_ index: Int) -> String { String(format: "trial-%03d", index) }
    /// Whether `name` is a trial's folder name.
    public static func isTrialName(_ name: String) -> Bool { name.hasPrefix("trial-") }
    public func leaderboard(_ format: String) -> String { "\(path)/leaderboard.\(format)" }
    public var paretoChart: String { "\(path)/pareto.svg" }
    public var paretoData: String { "\(path)/\(Self.paretoDataName)" }
    /// The chart's data, as the grid's page links it.
    public static let paretoDataName = "pareto.csv"
    public var reportFile: String { "\(path)/report.html" }

    /// Whether `path` holds a grid (its `grid.json`), not a single run.
    public var isGrid: Bool { FileManager.default.fileExists(atPath: manifestFile) }
}
