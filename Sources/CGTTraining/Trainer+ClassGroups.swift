import CGTModel

/// ClassyNet's class groups during training: chosen once from the recall summed over ranks,
/// and sent from rank 0 to the others on resume.
extension Trainer {
    func setClassGroups(_ groups: ClassGroups) {
        classGroups = groups
        objective.classGroups = groups
    }

    /// The groups as exit-major 0/1 membership, or all -1 while there are none: for a broadcast.
    func encodedClassGroups() -> [Int32] {
        let exits = network.exitCount, classes = network.classes
        guard let classGroups else { return Array(repeating: -1, count: exits * classes) }
        return (0..<exits).flatMap { e in (0..<classes).map { Int32(classGroups.isMember($0, exit: e) ? 1 : 0) } }
    }

    func decodeClassGroups(_ membership: [Int32]) -> ClassGroups {
        let exits = network.exitCount, classes = network.classes
        return ClassGroups(classes: classes, groups: (0..<exits).map { e in
            e == exits - 1 ? nil : (0..<classes).filter { membership[e * classes + $0] == 1 }
        })
    }

    /// ClassyNet: picks each shallow exit's classes from the per-class recall of the epoch just
    /// trained, summed over ranks (`ClassGroups.choose`).
    func chooseClassGroups(correct: [[Double]], counts: [Double]) throws {
        var totals = correct.flatMap { $0 } + counts
        if let communicator, communicator.size > 1 {
            try totals.withUnsafeMutableBufferPointer { try communicator.allReduceSum($0) }
        }
        let classes = network.classes
        let summedCounts = Array(totals.suffix(classes))
        let recall = (0..<network.exitCount).map { e in
            (0..<classes).map { c in summedCounts[c] > 0 ? totals[e * classes + c] / summedCounts[c] : 0 }
        }
        let groups = ClassGroups.choose(recall: recall, groupSize: job.method.groupSize ?? (classes + network.exitCount - 1) / network.exitCount)
        setClassGroups(groups)
        let described = groups.groups.dropLast().enumerated().map { "exit \($0.offset + 1): \($0.element ?? [])" }.joined(separator: ", ")
        progress.say("classynet groups chosen after epoch \(epoch + 1): \(described); the last exit answers every class")
    }
}
