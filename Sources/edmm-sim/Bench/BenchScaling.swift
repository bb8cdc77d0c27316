import EDMMCore

/// A short in-process version of the core micro-benchmarks (Benchmarks/, ordo-one/benchmark,
/// which draw the full curve): the ledger transition and the batch planning the daemon runs per
/// request, timed at the smallest and largest structure sizes of the curve.
struct BenchScaling: Codable {
    struct Point: Codable {
        var ranges: Int
        var ledgerFreeAllocateNs: Double
        var planPerRequestNs: Double
    }

    var points: [Point]

    /// Cost at the largest size over cost at the smallest: about 5 (log2 100,000 / log2 10) for
    /// O(log n) plus cache effects, 10,000 for O(n).
    var ledgerGrowth: Double { growth(\.ledgerFreeAllocateNs) }
    var planGrowth: Double { growth(\.planPerRequestNs) }

    private func growth(_ metric: KeyPath<Point, Double>) -> Double {
        guard let first = points.first, let last = points.last, first[keyPath: metric] > 0 else { return .infinity }
        return last[keyPath: metric] / first[keyPath: metric]
    }

    static func measure(sizes: [Int] = [10, 100_000], operations: Int = 200_000) -> BenchScaling {
        BenchScaling(points: sizes.map { Point(ranges: $0, ledgerFreeAllocateNs: ledger($0, operations), planPerRequestNs: plan($0)) })
    }

    /// FREE then ALLOCATE of one of `count` 2-page committed ranges (1-page holes between them),
    /// in a scattered order, per pair.
    private static func ledger(_ count: Int, _ operations: Int) -> Double {
        var ledger = EnclaveLedger(managedRange: PageRange(first: 0, count: UInt64(count) * 3 + 1_000_000))
        for index in 0..<UInt64(count) {
            _ = try? ledger.allocate(PageRange(first: index * 3, count: 2), permissions: index % 2 == 0 ? .rw : .rx)
        }
        var position = 0
        var failures = 0
        let start = ContinuousClock.now
        for step in 0..<operations {
            position = (position + 7919) % count
            let range = PageRange(first: UInt64(position) * 3, count: 2)
            do {
                try ledger.free(range, at: MonotonicInstant(nanoseconds: UInt64(step)))
                _ = try ledger.allocate(range, permissions: position % 2 == 0 ? .rw : .rx)
            } catch {
                failures += 1
            }
        }
        let elapsed = ContinuousClock.now - start
        return failures == 0 ? nanoseconds(elapsed) / Double(operations) : .infinity
    }

    /// Planning and attributing one flush of `count` TRIM requests from two clients whose
    /// ranges touch pairwise, per request (best of three).
    private static func plan(_ count: Int) -> Double {
        let requests = (0..<count).map { index in
            let pair = UInt64(index / 2) * 4
            let range = index % 2 == 0 ? PageRange(first: pair, count: 2) : PageRange(first: pair + 2, count: 1)
            return QueuedRequest(id: RequestID(UInt64(index)), operation: .trim, range: range)
        }
        let rounds = max(3, 200_000 / count)
        var best = Double.infinity
        for _ in 0..<3 {
            let start = ContinuousClock.now
            for _ in 0..<rounds {
                guard let plan = try? BatchPlanner().plan(requests) else { return .infinity }
                for ioctl in plan where (try? ioctl.attribute(.success(ioctl.range))) == nil { return .infinity }
            }
            best = min(best, nanoseconds(ContinuousClock.now - start) / Double(rounds * count))
        }
        return best
    }

    private static func nanoseconds(_ d: Duration) -> Double {
        Double(d.components.seconds) * 1e9 + Double(d.components.attoseconds) / 1e9
    }
}
