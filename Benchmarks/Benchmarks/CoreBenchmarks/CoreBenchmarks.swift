import Benchmark
import EDMMCore

/// Mutable state built once per benchmark and changed in place by its iterations (a class, so
/// that iterations do not copy a 100,000-range value). Benchmarks of one target run one at a
/// time on one thread, which is what makes the unchecked Sendable sound.
final class Fixture<State>: @unchecked Sendable {
    var state: State
    init(_ state: State) { self.state = state }
}

/// The structure sizes every benchmark runs at.
let sizes = [10, 100, 1_000, 10_000, 100_000]

/// Cycles through `count` indices in a scattered order (a stride coprime with `count`).
struct Scatter {
    let count: Int
    var position = 0
    mutating func next() -> Int {
        position = (position + 7919) % count
        return position
    }
}

/// `count` ranges of 2 pages with a 2-page gap after each, at pages [4i, 4i+2).
func sparseRanges(_ count: Int) -> [PageRange] {
    (0..<count).map { PageRange(first: UInt64($0) * 4, count: 2) }
}

func sparseSet(_ count: Int, seed: UInt64 = 1) -> RangeSet {
    var set = RangeSet(seed: seed)
    for range in sparseRanges(count) { set.insert(range) }
    return set
}

/// Gap searches always walk the same path of one tree, whose length is random (a treap's shape
/// depends on its seed), so they rotate over trees built from these seeds to measure the mean.
let shapeSeeds: [UInt64] = (1...8).map { $0 &* 0x9E37_79B9_7F4A_7C15 }

/// A ledger holding `count` separate committed ranges of 2 pages (alternating permissions so
/// that adjacent ranges stay distinct) with 1-page holes between them.
func ledger(committedRanges count: Int, seed: UInt64 = 1) -> EnclaveLedger {
    var ledger = EnclaveLedger(managedRange: PageRange(first: 0, count: UInt64(count) * 3 + 1_000_000), seed: seed)
    for index in 0..<UInt64(count) {
        _ = try? ledger.allocate(PageRange(first: index * 3, count: 2), permissions: index % 2 == 0 ? .rw : .rx)
    }
    return ledger
}

/// Two clients' TRIM requests interleaved so that each pair touches: [4i, 4i+2) and [4i+2, 4i+3).
func trimRequests(_ count: Int) -> [QueuedRequest] {
    (0..<count).map { index in
        let pair = UInt64(index / 2) * 4
        let range = index % 2 == 0 ? PageRange(first: pair, count: 2) : PageRange(first: pair + 2, count: 1)
        return QueuedRequest(id: RequestID(UInt64(index)), operation: .trim, range: range)
    }
}

let benchmarks: @Sendable () -> Void = {
    let microConfiguration = Benchmark.Configuration(
        metrics: [.wallClock, .mallocCountTotal], timeUnits: .nanoseconds, scalingFactor: .kilo,
        maxDuration: .seconds(1), maxIterations: 1_000)

    let batchConfiguration = Benchmark.Configuration(
        metrics: [.wallClock, .mallocCountTotal], timeUnits: .microseconds, maxDuration: .seconds(1),
        maxIterations: 1_000)

    for size in sizes {
        Benchmark("RangeSet insert+remove n=\(size)", configuration: microConfiguration) { benchmark, fixture in
            // Insert a page that coalesces with a range, then remove it again (a split).
            var scatter = Scatter(count: size)
            for _ in benchmark.scaledIterations {
                let page = UInt64(scatter.next()) * 4 + 2
                fixture.state.insert(PageRange(first: page, count: 1))
                fixture.state.remove(PageRange(first: page, count: 1))
            }
        } setup: {
            Fixture(sparseSet(size))
        }

        Benchmark("RangeSet lookup n=\(size)", configuration: microConfiguration) { benchmark, set in
            var scatter = Scatter(count: size)
            for _ in benchmark.scaledIterations {
                blackHole(set.contains(UInt64(scatter.next()) * 4 + 1))
            }
        } setup: {
            sparseSet(size)
        }

        Benchmark("RangeSet firstGap n=\(size)", configuration: microConfiguration) { benchmark, sets in
            // Every gap is 2 pages; a 3-page gap exists only past the last range.
            let window = PageRange(first: 0, count: UInt64(size) * 4 + 10)
            for iteration in benchmark.scaledIterations {
                blackHole(sets[iteration % sets.count].firstGap(ofAtLeast: 3, in: window))
            }
        } setup: {
            shapeSeeds.map { sparseSet(size, seed: $0) }
        }

        Benchmark("Ledger FREE+ALLOCATE n=\(size)", configuration: microConfiguration) { benchmark, fixture in
            var scatter = Scatter(count: size)
            var now: UInt64 = 0
            for _ in benchmark.scaledIterations {
                let index = UInt64(scatter.next())
                let range = PageRange(first: index * 3, count: 2)
                now += 1
                try? fixture.state.free(range, at: MonotonicInstant(nanoseconds: now))
                blackHole(try? fixture.state.allocate(range, permissions: .rw))
            }
        } setup: {
            Fixture(ledger(committedRanges: size))
        }

        Benchmark("Ledger page lifecycle n=\(size)", configuration: microConfiguration) { benchmark, fixture in
            // TRIM, EMODT done, TRIM_ACCEPTED, REMOVE_PAGES done, ALLOCATE: five transitions.
            var scatter = Scatter(count: size)
            for _ in benchmark.scaledIterations {
                let index = UInt64(scatter.next())
                let range = PageRange(first: index * 3, count: 2)
                try? fixture.state.trim(range)
                try? fixture.state.complete(.trim, range)
                try? fixture.state.trimAccepted(range)
                try? fixture.state.complete(.remove, range)
                blackHole(try? fixture.state.allocate(range, permissions: index % 2 == 0 ? .rw : .rx))
            }
        } setup: {
            Fixture(ledger(committedRanges: size))
        }

        Benchmark("Ledger anywhere placement n=\(size)", configuration: microConfiguration) { benchmark, ledgers in
            // Every hole is 1 page; 3 pages fit only above the last range.
            for iteration in benchmark.scaledIterations {
                blackHole(ledgers[iteration % ledgers.count].placement(pages: 3, permissions: .rw))
            }
        } setup: {
            shapeSeeds.map { ledger(committedRanges: size, seed: $0) }
        }

        Benchmark("Batch plan+attribute n=\(size)", configuration: batchConfiguration) { benchmark, requests in
            let planner = BatchPlanner()
            guard let plan = try? planner.plan(requests) else { return }
            for ioctl in plan {
                blackHole(try? ioctl.attribute(.success(ioctl.range)))
            }
        } setup: {
            trimRequests(size)
        }
    }
}
