import EDMMCore

/// One step of a random ledger history.
enum LedgerStep: CustomStringConvertible {
    case allocate(PageRange, PagePermissions)
    case free(PageRange)
    case trim(PageRange)
    case reclaim(PageRange)
    case trimAccepted(PageRange)
    case restrict(PageRange, PagePermissions)
    case relax(PageRange, PagePermissions)
    case makeTCS(PageRange)
    case complete(QueuedOperation, PageRange)
    case revert(QueuedOperation, PageRange)
    case reclaimOldest(UInt64)

    var description: String {
        switch self {
        case .allocate(let r, let p): "allocate \(r) \(p)"
        case .free(let r): "free \(r)"
        case .trim(let r): "trim \(r)"
        case .reclaim(let r): "reclaim \(r)"
        case .trimAccepted(let r): "trimAccepted \(r)"
        case .restrict(let r, let p): "restrict \(r) \(p)"
        case .relax(let r, let p): "relax \(r) \(p)"
        case .makeTCS(let r): "makeTCS \(r)"
        case .complete(let o, let r): "complete \(o) \(r)"
        case .revert(let o, let r): "revert \(o) \(r)"
        case .reclaimOldest(let n): "reclaimOldest \(n)"
        }
    }
}

/// What a step returned, comparable between the ledger and the reference model.
enum StepResult: Equatable {
    case ok
    case granted(Grant)
    case reclaimed([PageRange])
    case refused(LedgerError)
}

/// The reference ledger: one optional state per page and the transition table written out page
/// by page, independently of `EnclaveLedger`'s range machinery.
struct NaiveLedger {
    let managed: PageRange
    var states: NaivePages<PageState>

    init(managed: PageRange, size: Int) {
        self.managed = managed
        states = NaivePages(size: size)
    }

    /// The new state of one page, `.some(nil)` for a hole, or nil when refused.
    typealias Rule = (PageState?) -> PageState??

    mutating func run(_ step: LedgerStep, at now: MonotonicInstant) -> StepResult {
        switch step {
        case .allocate(let range, let permissions):
            guard permissions.isValidForSGX else { return .refused(.invalidPermissions(.allocate, permissions)) }
            let before = states
            let result = apply(.allocate, range) { state in
                switch state {
                case nil: .some(.committed(permissions))
                case .pooled(let kept, _): .some(.committed(kept))
                default: nil
                }
            }
            guard result == .ok else { return result }
            return .granted(grant(range, before))
        case .free(let range):
            return apply(.free, range) { state in
                if case .committed(let p) = state { return .some(.pooled(p, since: now)) }
                return nil
            }
        case .trim(let range):
            return apply(.trim, range) { state in
                switch state {
                case .committed(let p): .some(.trimQueued(from: .committed(p)))
                case .pooled(let p, let t): .some(.trimQueued(from: .pooled(p, since: t)))
                case .tcs: .some(.trimQueued(from: .tcs))
                default: nil
                }
            }
        case .reclaim(let range):
            return apply(.reclaim, range) { state in
                if case .pooled(let p, let t) = state { return .some(.trimQueued(from: .pooled(p, since: t))) }
                return nil
            }
        case .trimAccepted(let range):
            return apply(.trimAccepted, range) { $0 == .trimmed ? .some(.removeQueued) : nil }
        case .restrict(let range, let permissions):
            guard permissions.isValidForSGX else { return .refused(.invalidPermissions(.restrict, permissions)) }
            return apply(.restrict, range) { state in
                if case .committed(let p) = state { return .some(.restrictQueued(from: p, to: permissions)) }
                return nil
            }
        case .relax(let range, let permissions):
            guard permissions.isValidForSGX else { return .refused(.invalidPermissions(.relax, permissions)) }
            return apply(.relax, range) { state in
                if case .committed(let p) = state { return .some(.committed(p.union(permissions))) }
                return nil
            }
        case .makeTCS(let range):
            return apply(.makeTCS, range) { state in
                if case .committed(let p) = state { return .some(.tcsQueued(from: p)) }
                return nil
            }
        case .complete(let operation, let range):
            return apply(.complete(operation), range) { state in
                switch (operation, state) {
                case (.trim, .trimQueued): .some(.trimmed)
                case (.remove, .removeQueued): .some(nil)
                case (.restrict(let w), .restrictQueued(let from, let to)) where w == to:
                    .some(.committed(from.intersection(to)))
                case (.makeTCS, .tcsQueued): .some(.tcs)
                default: nil
                }
            }
        case .revert(let operation, let range):
            return apply(.revert(operation), range) { state in
                switch (operation, state) {
                case (.trim, .trimQueued(.committed(let p))): .some(.committed(p))
                case (.trim, .trimQueued(.pooled(let p, let t))): .some(.pooled(p, since: t))
                case (.trim, .trimQueued(.tcs)): .some(.tcs)
                case (.remove, .removeQueued): .some(.trimmed)
                case (.restrict(let w), .restrictQueued(let from, let to)) where w == to: .some(.committed(from))
                case (.makeTCS, .tcsQueued(let from)): .some(.committed(from))
                default: nil
                }
            }
        case .reclaimOldest(let wanted):
            return .reclaimed(reclaimOldest(wanted))
        }
    }

    private mutating func apply(_ operation: LedgerOperation, _ range: PageRange, _ rule: Rule) -> StepResult {
        guard managed.contains(range) else { return .refused(.outOfManagedRange(range, managed: managed)) }
        var next: [PageState?] = []
        for page in range.first..<range.end {
            let state = states[page]
            guard let new = rule(state) else {
                if let state, state.isPending, !operation.recordsOutcome {
                    return .refused(.pendingWork(operation, page: page, actual: state))
                }
                return .refused(.wrongState(operation, page: page, actual: state))
            }
            next.append(new)
        }
        for (offset, state) in next.enumerated() { states.pages[Int(range.first) + offset] = state }
        return .ok
    }

    private func grant(_ range: PageRange, _ before: NaivePages<PageState>) -> Grant {
        var grant = Grant(range: range, fresh: [], reused: [])
        for page in range.first..<range.end {
            if case .pooled(let p, _) = before[page] {
                if let last = grant.reused.last, last.permissions == p, last.range.end == page {
                    grant.reused[grant.reused.count - 1].range = PageRange(first: last.range.first, end: page + 1)
                } else {
                    grant.reused.append(Grant.Reused(range: PageRange(first: page, count: 1), permissions: p))
                }
            } else if let last = grant.fresh.last, last.end == page {
                grant.fresh[grant.fresh.count - 1] = PageRange(first: last.first, end: page + 1)
            } else {
                grant.fresh.append(PageRange(first: page, count: 1))
            }
        }
        return grant
    }

    private mutating func reclaimOldest(_ wanted: UInt64) -> [PageRange] {
        var remaining = wanted
        var taken = Set<UInt64>()
        while remaining > 0 {
            let pooledRuns = states.runs(in: states.all).filter {
                if case .pooled = $0.value { return true }
                return false
            }
            guard let oldest = pooledRuns.min(by: { $0.value.rank < $1.value.rank }) else { break }
            let count = min(oldest.range.count, remaining)
            for page in (oldest.range.end - count)..<oldest.range.end {
                guard case .pooled(let p, let t) = states[page] else { continue }
                states.pages[Int(page)] = .trimQueued(from: .pooled(p, since: t))
                taken.insert(page)
            }
            remaining -= count
        }
        return runs(of: taken, in: states.all)
    }

    var counts: PageCounts {
        var counts = PageCounts()
        for state in states.pages {
            switch state {
            case nil: break
            case .committed: counts.committed += 1
            case .pooled: counts.pooled += 1
            case .trimQueued: counts.trimQueued += 1
            case .trimmed: counts.trimmed += 1
            case .removeQueued: counts.removeQueued += 1
            case .restrictQueued: counts.restrictQueued += 1
            case .tcsQueued: counts.tcsQueued += 1
            case .tcs: counts.tcs += 1
            }
        }
        return counts
    }

    /// Pool first (pages pooled with exactly these permissions), then holes; lowest first.
    func placement(pages count: UInt64, permissions: PagePermissions) -> Placement? {
        func lowestRun(where matches: (PageState?) -> Bool) -> PageRange? {
            var runStart: UInt64?
            for page in managed.first..<managed.end {
                if matches(states[page]) {
                    let start = runStart ?? page
                    runStart = start
                    if page + 1 - start >= count {
                        var end = page + 1
                        while end < managed.end, matches(states[end]) { end += 1 }
                        return PageRange(first: start, end: end)
                    }
                } else {
                    runStart = nil
                }
            }
            return nil
        }
        if let run = lowestRun(where: {
            if case .pooled(let p, _) = $0 { return p == permissions }
            return false
        }) {
            return Placement(range: PageRange(first: run.first, count: count), fromPool: true, room: count)
        }
        if let run = lowestRun(where: { $0 == nil }) {
            return Placement(range: PageRange(first: run.first, count: count), fromPool: false, room: run.count)
        }
        return nil
    }
}
