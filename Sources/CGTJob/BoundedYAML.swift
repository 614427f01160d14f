import Foundation
import Yams

/// YAML from files other people wrote (job files, grid files, the job stored in a
/// checkpoint) and the values of overrides (`--set`, a grid trial's parameters), composed
/// within bounds: a size limit, a nesting limit checked before the parser recurses, a limit
/// on the nodes the document expands to (aliases counted every time they are used, so a
/// "billion laughs" is refused at once), and no duplicate keys (YAML keeps the last silently).
/// A UTF-8 byte-order mark (which some Windows editors write) is dropped first.
package enum BoundedYAML {
    package static let maxBytes = 1 << 20
    package static let maxDepth = 64
    package static let maxNodes = 100_000

    /// The text of the file at `path`, refused before reading when it is not a regular file or
    /// larger than `maxBytes` (a job given as the dataset, or /dev/zero, is not read whole).
    ///
    /// One descriptor is checked and read, so the file checked is the file read; it is opened
    /// without blocking, so a pipe given as a job file is refused rather than waited on.
    package static func read(_ path: String, what: String) throws -> String {
        func failure(_ call: String) -> JobError {
            let reason = errno == ENOENT ? "no such file" : "\(call) failed: \(String(cString: strerror(errno)))"
            return JobError(source: path, key: "", "cannot read the \(what): \(reason)")
        }
        let descriptor = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard descriptor >= 0 else { throw failure("open") }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw failure("fstat") }
        guard status.st_mode & S_IFMT == S_IFREG else {
            throw JobError(source: path, key: "", "cannot read the \(what): not a regular file")
        }
        guard status.st_size <= maxBytes else {
            throw JobError(
                source: path, key: "",
                "is \(status.st_size) bytes, more than the \(maxBytes) a job or grid file may have")
        }
        // One byte more than allowed is asked for, so a file that grew since fstat is still caught.
        var bytes = [UInt8](repeating: 0, count: maxBytes + 1)
        var count = 0
        while count < bytes.count {
            let got = bytes.withUnsafeMutableBytes {
                Foundation.read(descriptor, $0.baseAddress! + count, $0.count - count)
            }
            if got < 0 && errno == EINTR { continue }
            guard got >= 0 else { throw failure("read") }
            if got == 0 { break }
            count += got
        }
        guard count <= maxBytes else {
            throw JobError(source: path, key: "", "is more than the \(maxBytes) bytes a job or grid file may have")
        }
        guard let text = String(validating: bytes[..<count], as: UTF8.self) else {
            throw JobError(source: path, key: "", "is not UTF-8 text; a \(what) is YAML")
        }
        return text
    }

    /// The document's root node (nil for an empty document), or a `JobError` naming `source`.
    package static func compose(_ text: String, source: String) throws -> Node? {
        let text = text.hasPrefix("\u{FEFF}") ? String(text.dropFirst()) : text
        guard text.utf8.count <= maxBytes else {
            throw JobError(
                source: source, key: "",
                "is \(text.utf8.count) bytes, more than the \(maxBytes) a job or grid file may have")
        }
        if let line = lineBeyondDepthLimit(text) {
            throw JobError(source: source, key: "", "nests deeper than \(maxDepth) levels (line \(line))")
        }
        return try composeChecked(text, source: source, key: [], problem: "not valid YAML")
    }

    /// The value of an override "key=value" (nil when empty), within the bounds of a job file:
    /// it lands `key.count` levels deep, so key and value together nest at most `maxDepth`.
    /// Errors name `source` (`--set`, a grid file's trial) and the key.
    package static func composeValue(_ text: String, source: String, key: [String]) throws -> Node? {
        let dotted = key.joined(separator: ".")
        guard key.count < maxDepth else {
            throw JobError(
                source: source, key: String(dotted.prefix(80)),
                "the key has \(key.count) parts, more than the \(maxDepth) levels a job may nest")
        }
        guard text.utf8.count <= maxBytes else {
            throw JobError(
                source: source, key: dotted, "value is \(text.utf8.count) bytes, more than the \(maxBytes) allowed")
        }
        if let line = lineBeyondDepthLimit(text, limit: maxDepth - key.count) {
            throw JobError(
                source: source, key: dotted,
                "value nests deeper than the \(maxDepth) levels a job may have, \(key.count) of them the key's (line \(line) of the value)"
            )
        }
        return try composeChecked(text, source: source, key: key, problem: "value is not valid YAML")
    }

    /// Parses `text` (checked for size and depth already) and counts its nodes; `key` is
    /// where it sits in the job, named in errors.
    private static func composeChecked(_ text: String, source: String, key: [String], problem: String) throws
        -> Node?
    {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw JobError(source: source, key: key.joined(separator: "."), "\(problem): \(oneLine(error))")
        }
        guard let root else { return nil }
        var nodes = 0
        try check(root, path: key, nodes: &nodes, source: source, value: key.joined(separator: "."))
        return root
    }

    /// Counts nodes (an alias as often as it is used, stopping at the limit) and rejects duplicate
    /// keys; `value` is the key of the whole value (an override's), named when it expands too far.
    private static func check(_ node: Node, path: [String], nodes: inout Int, source: String, value: String) throws {
        nodes += 1
        guard nodes <= maxNodes else {
            throw JobError(source: source, key: value, "expands to more than \(maxNodes) values (aliases of aliases?)")
        }
        switch node {
        case .scalar:
            return
        case .sequence(let sequence):
            for (index, element) in sequence.enumerated() {
                try check(element, path: path + ["\(index)"], nodes: &nodes, source: source, value: value)
            }
        case .mapping(let mapping):
            var seen: [String: Int] = [:]
            for (key, child) in mapping {
                let name = key.string ?? "\(key)"
                let line = key.mark?.line ?? 0
                if let first = seen[name] {
                    throw JobError(
                        source: source, key: (path + [name]).joined(separator: "."),
                        "duplicate key (lines \(first) and \(line)); YAML would keep the last silently")
                }
                seen[name] = line
                try check(child, path: path + [name], nodes: &nodes, source: source, value: value)
            }
        }
    }

    /// The first line whose nesting (indentation levels, "- " sequence entries and open flow
    /// brackets) exceeds `limit`, found without parsing, so the parser never recurses that deep.
    static func lineBeyondDepthLimit(_ text: String, limit: Int = maxDepth) -> Int? {
        var indents: [Int] = []
        var flowDepth = 0
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let characters = Array(line)
            var position = 0
            while position < characters.count && characters[position] == " " { position += 1 }
            guard position < characters.count, characters[position] != "#" else { continue }
            if flowDepth == 0 {
                while let last = indents.last, last >= position { indents.removeLast() }
                indents.append(position)
            }
            var dashes = 0
            while position + 1 < characters.count && characters[position] == "-" && characters[position + 1] == " " {
                dashes += 1
                position += 2
                while position < characters.count && characters[position] == " " { position += 1 }
            }
            var quote: Character?
            var deepest = flowDepth
            var index = position
            scan: while index < characters.count {
                let character = characters[index]
                defer { index += 1 }
                if let open = quote {
                    // "\x" escapes inside double quotes; '' is an escaped quote inside single ones.
                    if open == "\"" && character == "\\" {
                        index += 1
                    } else if character == open {
                        quote = nil
                    }
                    continue
                }
                switch character {
                case "\"", "'": quote = character
                // A comment starts at "#" only at the start or after a blank.
                case "#" where index == 0 || characters[index - 1] == " " || characters[index - 1] == "\t": break scan
                case "[", "{":
                    flowDepth += 1
                    deepest = max(deepest, flowDepth)
                case "]", "}": flowDepth = max(0, flowDepth - 1)
                default: continue
                }
            }
            if indents.count + dashes + deepest > limit { return number + 1 }
        }
        return nil
    }

    static func oneLine(_ error: Error) -> String {
        "\(error)".split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .joined(separator: " ")
    }
}
