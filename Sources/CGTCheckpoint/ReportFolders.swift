/// The folder `cgt eval` writes a checkpoint's report to (`<run>/eval` unless told another):
/// `eval.json` with its CSV files, and the model it measured when BatchNorm was re-estimated.
public struct EvaluationFolder: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    /// The routing statistics and everything measured (`EvaluationReport`).
    public var reportFile: String { "\(path)/\(Self.reportFileName)" }
    public static let reportFileName = "eval.json"
    /// The checkpoint with the re-estimated BatchNorm statistics the report measured.
    public var evaluatedModel: String { "\(path)/model.h5" }
}

/// The folder `cgt report` writes a comparison of several runs to (`--out`, default `runs/compare`).
public struct ComparisonFolder: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    public var reportFile: String { "\(path)/report.html" }
    /// One row per group of runs: the means and spreads the page draws.
    public var summaryFile: String { "\(path)/summary.csv" }
    public var figuresFolder: String { "\(path)/\(RunDirectory.figuresFolderName)" }
}
