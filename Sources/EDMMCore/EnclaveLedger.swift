/// edmmd's accounting of one enclave: the state of every page it manages (see `PageState`),
/// per-state counters, the lazy-free pool and the growth state of the enclave's heap.
///
/// Every transition is validated before anything changes: on error the ledger is untouched and the
/// error names the first offending page and its state. Transitions cost expected O(log n + k) for
/// n tracked ranges and k distinct states inside the request's range.
///
/// A value type without locking: the daemon's per-enclave serial queue owns it.
public struct EnclaveLedger: Sendable {
    /// The pages edmmd may track and place allocations in (part of ELRANGE, in pages from the base).
    public let managedRange: PageRange
    public private(set) var counts = PageCounts()
    /// Growth of "anywhere" allocations; reset whenever the enclave frees or trims.
    public internal(set) var growth = GrowthState()

    var pages: RangeMap<PageState>
    /// Pooled pages by permissions (index = `PagePermissions.rawValue`), coalesced regardless of
    /// age, for placing "anywhere" allocations.
    var pool: [RangeSet]

    public init(managedRange: PageRange, seed: UInt64 = 0x1ED6_E500_0000_0001) {
        self.managedRange = managedRange
        pages = RangeMap(seed: seed)
        pool = (0..<8).map { RangeSet(seed: seed &+ UInt64($0) &+ 1) }
    }

    /// The state of `page`; nil for a hole.
    public func state(of page: UInt64) -> PageState? { pages[page] }

    /// The tracked ranges inside `window` with their states (holes omitted), clipped to it.
    public func states(in window: PageRange) -> [RangeMap<PageState>.Entry] {
        pages.entries(overlapping: window)
    }

    /// Every tracked range in order, for status views and for comparing with the EPCM.
    public var trackedRanges: RangeMap<PageState> { pages }

    // MARK: Client verbs

    /// FREE: committed pages move to the lazy-free pool, tagged with `now` for oldest-first reclaim.
    public mutating func free(_ range: PageRange, at now: MonotonicInstant) throws(LedgerError) {
        try transition(.free, range) { state in
            guard case .committed(let permissions) = state else { return .refused }
            return .state(.pooled(permissions, since: now))
        }
        growth.reset()
    }

    /// TRIM: queues EMODT(TRIM) for committed, pooled or TCS pages.
    public mutating func trim(_ range: PageRange) throws(LedgerError) {
        try transition(.trim, range) { state in
            switch state {
            case .committed(let permissions): .state(.trimQueued(from: .committed(permissions)))
            case .pooled(let permissions, let since): .state(.trimQueued(from: .pooled(permissions, since: since)))
            case .tcs: .state(.trimQueued(from: .tcs))
            default: .refused
            }
        }
        growth.reset()
    }

    /// RECLAIM chosen by edmmd: queues EMODT(TRIM) for pooled pages.
    public mutating func reclaim(_ range: PageRange) throws(LedgerError) {
        try transition(.reclaim, range) { state in
            guard case .pooled(let permissions, let since) = state else { return .refused }
            return .state(.trimQueued(from: .pooled(permissions, since: since)))
        }
    }

    /// TRIM_ACCEPTED: the client EACCEPTed the trimmed pages; queues REMOVE_PAGES.
    public mutating func trimAccepted(_ range: PageRange) throws(LedgerError) {
        try transition(.trimAccepted, range) { state in
            state == .trimmed ? .state(.removeQueued) : .refused
        }
    }

    /// RESTRICT: queues EMODPR of committed pages to `permissions`.
    public mutating func restrict(_ range: PageRange, to permissions: PagePermissions) throws(LedgerError) {
        guard permissions.isValidForSGX else { throw .invalidPermissions(.restrict, permissions) }
        try transition(.restrict, range) { state in
            guard case .committed(let current) = state else { return .refused }
            return .state(.restrictQueued(from: current, to: permissions))
        }
    }

    /// RELAX: the client extended permissions with EMODPE (no ioctl); bookkeeping only.
    public mutating func relax(_ range: PageRange, adding permissions: PagePermissions) throws(LedgerError) {
        guard permissions.isValidForSGX else { throw .invalidPermissions(.relax, permissions) }
        try transition(.relax, range) { state in
            guard case .committed(let current) = state else { return .refused }
            return .state(.committed(current.union(permissions)))
        }
    }

    /// MAKE_TCS: queues EMODT(TCS) for committed pages (one page per TCS).
    public mutating func makeTCS(_ range: PageRange) throws(LedgerError) {
        try transition(.makeTCS, range) { state in
            guard case .committed(let permissions) = state else { return .refused }
            return .state(.tcsQueued(from: permissions))
        }
    }

    // MARK: Ioctl outcomes

    /// Records that the ioctl for `operation` finished for every page of `range`.
    public mutating func complete(_ operation: QueuedOperation, _ range: PageRange) throws(LedgerError) {
        try transition(.complete(operation), range, Self.completionRule(operation))
    }

    /// Puts the pages of `range` back where they were before `operation` was queued (its ioctl
    /// failed before reaching them).
    public mutating func revert(_ operation: QueuedOperation, _ range: PageRange) throws(LedgerError) {
        try transition(.revert(operation), range, Self.revertRule(operation))
    }

    /// Records what the device did to `range` when it ran `operation` on pages the ledger had
    /// refused it for (a client that gets the kernel's answers: the kernel decided, and the
    /// ledger follows). Never refuses a state; pages with queued work must have been flushed.
    public mutating func follow(_ operation: QueuedOperation, doneOn range: PageRange) throws(LedgerError) {
        try transition(.complete(operation), range) { state in
            switch operation {
            case .trim: .state(.trimmed)
            case .remove: .hole
            case .makeTCS: .state(.tcs)
            case .restrict(let permissions):
                if case .committed(let current) = state {
                    .state(.committed(current.intersection(permissions)))
                } else {
                    .state(.committed(permissions))
                }
            }
        }
        if operation == .trim || operation == .remove { growth.reset() }
    }

    static func completionRule(_ operation: QueuedOperation) -> (PageState?) -> Next {
        { state in
            switch (operation, state) {
            case (.trim, .trimQueued): .state(.trimmed)
            case (.remove, .removeQueued): .hole
            case (.restrict(let wanted), .restrictQueued(let from, let to)) where wanted == to:
                // EMODPR leaves the intersection of old and new permissions.
                .state(.committed(from.intersection(to)))
            case (.makeTCS, .tcsQueued): .state(.tcs)
            default: .refused
            }
        }
    }

    static func revertRule(_ operation: QueuedOperation) -> (PageState?) -> Next {
        { state in
            switch (operation, state) {
            case (.trim, .trimQueued(let origin)): .state(origin.state)
            case (.remove, .removeQueued): .state(.trimmed)
            case (.restrict(let wanted), .restrictQueued(let from, let to)) where wanted == to: .state(.committed(from))
            case (.makeTCS, .tcsQueued(let from)): .state(.committed(from))
            default: .refused
            }
        }
    }

    // MARK: Reclaim

    /// The oldest pooled range, if any.
    public var oldestPooled: (range: PageRange, since: MonotonicInstant)? {
        guard let oldest = pages.lowestRanked(), case .pooled(_, let since) = oldest.value else { return nil }
        return (oldest.range, since)
    }

    /// Queues EMODT(TRIM) for up to `wanted` pooled pages, oldest ranges first (taking the top of
    /// the last range when only part of it is needed), and returns the chosen pages, coalesced.
    public mutating func reclaimOldestPooled(pages wanted: UInt64) -> [PageRange] {
        var chosen = RangeSet()
        var remaining = wanted
        while remaining > 0, let oldest = pages.lowestRanked(), case .pooled(let permissions, let since) = oldest.value {
            let take =
                oldest.range.count <= remaining
                ? oldest.range : PageRange(first: oldest.range.end - remaining, end: oldest.range.end)
            let queued = PageState.trimQueued(from: .pooled(permissions, since: since))
            replace(take, from: oldest.value, to: queued)
            pages.assign(queued, to: take)
            chosen.insert(take)
            remaining -= take.count
        }
        return Array(chosen)
    }

    // MARK: Transition engine

    enum Next: Equatable {
        case state(PageState)
        case hole
        case refused

        var pageState: PageState? {
            if case .state(let state) = self { return state }
            return nil
        }
    }

    /// A maximal run of one state inside a request's range, and what it becomes.
    struct Step {
        var range: PageRange
        var old: PageState?
        var new: PageState?
    }

    /// Validates `rule` over every page of `range` without changing anything.
    func plan(_ operation: LedgerOperation, _ range: PageRange, _ rule: (PageState?) -> Next) throws(LedgerError)
        -> [Step]
    {
        guard managedRange.contains(range) else { throw .outOfManagedRange(range, managed: managedRange) }
        var steps: [Step] = []
        var cursor = range.first
        func add(_ segment: PageRange, _ old: PageState?) throws(LedgerError) {
            let next = rule(old)
            guard next != .refused else {
                if let old, old.isPending, !operation.recordsOutcome {
                    throw .pendingWork(operation, page: segment.first, actual: old)
                }
                throw .wrongState(operation, page: segment.first, actual: old)
            }
            steps.append(Step(range: segment, old: old, new: next.pageState))
        }
        for entry in pages.entries(overlapping: range) {
            if entry.range.first > cursor { try add(PageRange(first: cursor, end: entry.range.first), nil) }
            try add(entry.range, entry.value)
            cursor = entry.range.end
        }
        if cursor < range.end { try add(PageRange(first: cursor, end: range.end), nil) }
        return steps
    }

    /// Applies validated steps: counters and pool per step, the page map once per contiguous run
    /// of equal new states.
    mutating func commit(_ steps: [Step]) {
        var runStart = 0
        for (index, step) in steps.enumerated() {
            replace(step.range, from: step.old, to: step.new)
            let isLastOfRun =
                index == steps.count - 1 || steps[index + 1].new != step.new
                || steps[index + 1].range.first != step.range.end
            guard isLastOfRun else { continue }
            let run = PageRange(first: steps[runStart].range.first, end: step.range.end)
            if let new = step.new { pages.assign(new, to: run) } else { pages.remove(run) }
            runStart = index + 1
        }
    }

    mutating func transition(_ operation: LedgerOperation, _ range: PageRange, _ rule: (PageState?) -> Next)
        throws(LedgerError)
    {
        commit(try plan(operation, range, rule))
    }

    /// Counter and pool bookkeeping for pages of `range` changing state (the page map is the
    /// caller's).
    private mutating func replace(_ range: PageRange, from old: PageState?, to new: PageState?) {
        counts.subtract(range.count, old)
        counts.add(range.count, new)
        if case .pooled(let permissions, _) = old { pool[Int(permissions.rawValue)].remove(range) }
        if case .pooled(let permissions, _) = new { pool[Int(permissions.rawValue)].insert(range) }
    }
}

extension PagePermissions {
    /// SECINFO permissions the SGX instructions accept: write requires read.
    public var isValidForSGX: Bool { !contains(.write) || contains(.read) }
}
