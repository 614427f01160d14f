import CGTData
import Dispatch

/// The samples of a stream, read on the read thread a segment at a time, `depth` segments
/// (one, unless raised) ahead of the one the loop takes samples from.
///
/// Positions are asked for in increasing order (a shuffle buffer's refills, or `global`
/// mode's steps in turn); the loop waits only when it outruns the reads, and that wait is
/// counted as the epoch's read stall.
final class SegmentFeed {
    /// Positions in the stream.
    let count: Int
    let segmentRows: Int
    private let thread: ReadThread
    /// Reads the samples of stream positions (on the read thread), with what that cost.
    private let read: (Range<Int>) throws -> (DatasetSplit, DataReadCounters)
    private var current: (range: Range<Int>, data: DatasetSplit)?
    /// Segments asked of the read thread, in stream order.
    private var ahead: [(range: Range<Int>, pending: PendingRead<(DatasetSplit, DataReadCounters)>)] = []
    /// How many segments are kept asked for ahead of the current one.
    var depth = 1 {
        didSet { readAhead() }
    }
    /// What the segments taken since `takeCost()` cost, and the seconds the loop waited for them.
    private var cost = DataReadCounters()

    init(
        count: Int, segmentRows: Int, from start: Int, thread: ReadThread,
        read: @escaping (Range<Int>) throws -> (DatasetSplit, DataReadCounters)
    ) {
        precondition(segmentRows >= 1)
        self.count = count
        self.segmentRows = segmentRows
        self.thread = thread
        self.read = read
        next = start
        readAhead()
    }

    /// The first stream position not yet asked for.
    private var next: Int

    /// Whether the last segment of the stream has been asked of the read thread.
    var hasAskedForTheLast: Bool { next >= count }

    /// The segment holding `position` (positions are asked for in increasing order): the
    /// stream positions it holds and their samples.
    func segment(containing position: Int) throws -> (range: Range<Int>, data: DatasetSplit) {
        if let current, current.range.contains(position) { return current }
        guard let first = ahead.first, first.range.contains(position) else {
            preconditionFailure("stream position \(position) asked for out of order")
        }
        ahead.removeFirst()
        current = nil
        let started = DispatchTime.now()
        let (data, cost) = try first.pending.wait()
        self.cost = self.cost + cost
        self.cost.seconds += DatasetReader.seconds(since: started)
        current = (first.range, data)
        readAhead()
        return (first.range, data)
    }

    /// Calls `body` with each of `count` positions' samples in turn (`positions(i)` increasing
    /// in i), a segment at a time: the sample's row of features, label and id.
    func forEachSample(
        _ count: Int, at positions: (Int) -> Int,
        _ body: (_ i: Int, _ features: UnsafePointer<Float>, _ label: Int32, _ id: Int64) -> Void
    ) throws {
        var i = 0
        while i < count {
            let (range, data) = try segment(containing: positions(i))
            let width = data.featureCount
            data.features.withUnsafeBufferPointer { features in
                data.labels.withUnsafeBufferPointer { labels in
                    data.sampleIDs.withUnsafeBufferPointer { ids in
                        while i < count, range.contains(positions(i)) {
                            let index = positions(i) - range.lowerBound
                            body(i, features.baseAddress! + index * width, labels[index], ids[index])
                            i += 1
                        }
                    }
                }
            }
        }
    }

    /// What `cost` holds, and starts anew.
    func takeCost() -> DataReadCounters {
        defer { cost = DataReadCounters() }
        return cost
    }

    private func readAhead() {
        while ahead.count < depth && next < count {
            let range = next..<min(count, next + segmentRows)
            let read = self.read
            ahead.append((range, PendingRead(on: thread) { try read(range) }))
            next = range.upperBound
        }
    }
}
