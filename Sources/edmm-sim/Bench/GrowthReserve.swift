import EDMMCore
import EDMMSimHost

/// The pages growth granted beyond what a workload asked, committed and accepted, kept by the
/// benchmark client as a runtime's allocator keeps them: the next allocations that allow growth
/// take them before asking edmmd, and a workload that released everything it held (a process
/// that exits and starts again) gives them back with TRIM. Without it the workload would count a
/// grant's surplus as used, and grow and tear down more memory under growth than without.
final class GrowthReserve {
    private var runs: [PageRange] = []

    /// The lowest run of `pages` kept pages, taken out of the reserve; nil if none is long enough.
    func take(_ pages: UInt64) -> PageRange? {
        guard let index = runs.firstIndex(where: { $0.count >= pages }) else { return nil }
        let run = runs[index]
        let taken = PageRange(first: run.first, count: pages)
        if run.count == pages {
            runs.remove(at: index)
        } else {
            runs[index] = PageRange(first: taken.end, end: run.end)
        }
        return taken
    }

    /// Everything kept, emptying the reserve.
    func takeAll() -> [PageRange] {
        defer { runs.removeAll() }
        return runs
    }

    /// The outcome of an ALLOCATE of `asked` pages that allowed growth: the asked pages for the
    /// workload, the rest of the grant kept here.
    func keepSurplus(of outcome: HostOutcome, asked: UInt64) -> HostOutcome {
        guard case .allocated(let granted, let fresh, let reused) = outcome, granted.count > asked else { return outcome }
        runs.append(PageRange(first: granted.first + asked, end: granted.end))
        let used = PageRange(first: granted.first, count: asked)
        // The split between fresh and reused pages is reported for the whole grant; the workload
        // only needs the range.
        return .allocated(used, freshPages: min(fresh, asked), reusedPages: min(reused, asked - min(fresh, asked)))
    }
}
