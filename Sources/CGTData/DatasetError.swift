import CGTFiles

/// A dataset file that cgt cannot use, with the file and object at fault.
public struct DatasetError: LocatedError {
    public let file: String
    public let object: String
    public let problem: String

    public init(file: String, object: String, _ problem: String) {
        self.file = file
        self.object = object
        self.problem = problem
    }

    public var location: [String] { [file, object] }
}
