import CGTJob
import CGTModel
import CGTMPI

/// ClassyNet's class groups during training: chosen once from the recall summed over ranks,
/// and sent from rank 0 to the others on resume.
extension Trainer {
    func setClassGroups(_ groups: ClassGroups) {
        classGroups = groups
        objective.classGroups = groups
    }

    /// Sends rank 0's groups (if it has any yet) to every rank, as their membership table.
    func broadcastClassGroups(_ communicator: Communicator) throws {
        let count = network.exitCount * network.classes
        var membership = classGroups?.membership ?? Array(repeating: -1, count: count)
        try membership.withUnsafeMutableBytes { try communicator.broadcast($0) }
        if membership[0] >= 0 { setClassGroups(ClassGroups(classes: network.classes, membership: membership)) }
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
