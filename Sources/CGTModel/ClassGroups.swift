/// ClassyNet's exit policy (IEEE IoT Journal 11(9), 2023): each shallow exit answers only
/// its own group of classes and says "other" for the rest; the last exit answers every class.
///
/// A shallow head has `classes + 1` outputs, the last being "other". It is trained with the
/// labels of its group's classes and "other" for every other class, and at inference a
/// sample leaves it only when the head confidently predicts one of its own classes.
public struct ClassGroups: Equatable, Sendable {
    public let classes: Int
    /// The classes each exit answers, ascending; nil means every class (always the last exit).
    public let groups: [[Int]?]
    private let members: [[Bool]]

    public init(classes: Int, groups: [[Int]?]) {
        precondition(groups.last.map { $0 == nil } ?? false, "the last exit answers every class")
        precondition(
            groups.allSatisfy { $0?.allSatisfy { (0..<classes).contains($0) } ?? true },
            "class out of range in \(groups)")
        self.classes = classes
        self.groups = groups.map { $0?.sorted() }
        members = groups.map { group in
            var member = [Bool](repeating: group == nil, count: classes)
            for c in group ?? [] { member[c] = true }
            return member
        }
    }

    public var exits: Int { groups.count }

    /// Exit-major 0/1 membership, 1 where exit e answers class c: how checkpoints store and
    /// ranks exchange the groups.
    public var membership: [Int32] { members.flatMap { $0.map { $0 ? 1 : 0 } } }

    /// The groups of a `membership` table of `exits` rows; the last exit answers every class.
    public init(classes: Int, membership: [Int32]) {
        let exits = membership.count / classes
        self.init(
            classes: classes,
            groups: (0..<exits).map { e in
                e == exits - 1 ? nil : (0..<classes).filter { membership[e * classes + $0] == 1 }
            })
    }

    /// The target of exit e for a sample of class `label`: the class itself, or `classes` ("other").
    @inlinable
    public func target(_ label: Int32, exit e: Int) -> Int32 {
        isMember(Int(label), exit: e) ? label : Int32(classes)
    }

    public func isMember(_ c: Int, exit e: Int) -> Bool { members[e][c] }

    /// The grouping rule: shallow exits in order each take, from the classes no earlier exit
    /// took, the `groupSize` classes they recall best on the training data (ties: lower class
    /// index first). `recall[e][c]` is exit e's recall of class c; the last exit takes all.
    public static func choose(recall: [[Double]], groupSize: Int) -> ClassGroups {
        let exits = recall.count
        let classes = recall.first?.count ?? 0
        var taken = Set<Int>()
        var groups: [[Int]?] = []
        for e in 0..<(exits - 1) {
            let ranked = (0..<classes).filter { !taken.contains($0) }.sorted { a, b in
                recall[e][a] != recall[e][b] ? recall[e][a] > recall[e][b] : a < b
            }
            let group = Array(ranked.prefix(groupSize))
            taken.formUnion(group)
            groups.append(group)
        }
        groups.append(nil)
        return ClassGroups(classes: classes, groups: groups)
    }
}
