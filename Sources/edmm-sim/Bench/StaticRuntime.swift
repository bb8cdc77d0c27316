import EDMMCore
import EDMMSimHost
import SGXSimulator

/// The seed paper's baseline, `static`: an SGX1-style enclave whose whole heap was EADDed and
/// EEXTENDed when it was built, so that every workload operation is the runtime's own
/// bookkeeping: no exit, no ioctl, no EDMM instruction. Its heap is sized to the workload's peak
/// (the best an operator who knows the peak can do); `loadCycles` prices building it with the
/// cost table's EADD (+ EEXTEND) per page. SGX1 cannot change a page's permissions or type after
/// EINIT, so restrict and relax change only the record, and a TCS comes from the heap's pages.
///
/// Used from one thread.
final class StaticRuntime {
    let managed: PageRange
    /// The runtime's record: pages the workload holds, with the permissions it asked for.
    private(set) var pages = RangeMap<HostPage>()
    private(set) var heldPages: UInt64 = 0
    /// The most pages the workload held at once: the heap the enclave must be built with.
    private(set) var peakPages: UInt64 = 0

    init(blueprint: EnclaveBlueprint) {
        managed = blueprint.managedPages
    }

    /// Building the heap at load: one EADD and its EEXTENDs per page of the peak.
    var loadCycles: UInt64 { peakPages * (CostModel.default.cycles[.eadd] ?? 0) }

    func perform(_ operations: [HostOperation], latency: inout LatencyHistogram) -> [Result<HostOutcome, PerRequestRuntime.Failure>] {
        operations.map { operation in
            let start = ContinuousClock.now
            defer { latency.record(ContinuousClock.now - start) }
            do throws(PerRequestRuntime.Failure) {
                return .success(try run(operation))
            } catch {
                return .failure(error)
            }
        }
    }

    private func run(_ operation: HostOperation) throws(PerRequestRuntime.Failure) -> HostOutcome {
        switch operation {
        case .allocate(let count, _):
            guard let gap = pages.firstGap(ofAtLeast: count, in: managed) else { throw .noAddressSpace(pages: count) }
            return hold(PageRange(first: gap.first, count: count))
        case .allocateAt(let range):
            guard !pages.overlaps(range) else { throw .notHeld(range) }
            return hold(range)
        case .free(let range), .trim(let range):
            try requireHeld(range)
            pages.remove(range)
            heldPages -= range.count
        case .restrict(let range, let permissions):
            try requireHeld(range)
            pages.assign(.inUse(permissions), to: range)
        case .relax(let range, let permissions):
            try requireHeld(range)
            pages.assign(.inUse(permissions), to: range)
        case .makeTCS(let page):
            let range = PageRange(first: page, count: 1)
            try requireHeld(range)
            pages.assign(.tcs, to: range)
        }
        return .done(nil)
    }

    private func hold(_ range: PageRange) -> HostOutcome {
        pages.assign(.inUse(.rw), to: range)
        heldPages += range.count
        peakPages = max(peakPages, heldPages)
        return .allocated(range, freshPages: range.count, reusedPages: 0)
    }

    private func requireHeld(_ range: PageRange) throws(PerRequestRuntime.Failure) {
        guard pages.covers(range) else { throw .notHeld(range) }
    }

    /// Pages the record holds, counted range by range, against the running count.
    var recordedPages: UInt64 { pages.reduce(0) { $0 + $1.range.count } }
}
