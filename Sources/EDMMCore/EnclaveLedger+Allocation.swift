/// What an ALLOCATE granted: one contiguous range, split into pages the client must EACCEPT
/// (`fresh`) and pages reused from the lazy-free pool that it must NOT EACCEPT again (`reused`,
/// which keep the permissions they had when freed).
public struct Grant: Hashable, Sendable {
    public struct Reused: Hashable, Sendable {
        public var range: PageRange
        public var permissions: PagePermissions

        public init(range: PageRange, permissions: PagePermissions) {
            self.range = range
            self.permissions = permissions
        }
    }

    public var range: PageRange
    public var fresh: [PageRange]
    public var reused: [Reused]

    public init(range: PageRange, fresh: [PageRange], reused: [Reused]) {
        self.range = range
        self.fresh = fresh
        self.reused = reused
    }

    public var freshPages: UInt64 { fresh.reduce(0) { $0 + $1.count } }
    public var reusedPages: UInt64 { reused.reduce(0) { $0 + $1.range.count } }
}

/// Where an "anywhere" allocation would go.
public struct Placement: Hashable, Sendable {
    /// The asked pages.
    public var range: PageRange
    /// True when served from the pool (no fresh pages), false for a hole.
    public var fromPool: Bool
    /// Free contiguous pages from `range.first` that growth may extend the grant into (for a
    /// hole: up to the next tracked page; for the pool: just the asked pages).
    public var room: UInt64

    public init(range: PageRange, fromPool: Bool, room: UInt64) {
        self.range = range
        self.fromPool = fromPool
        self.room = room
    }
}

/// What ALLOCATE asks for.
public enum AllocationRequest: Hashable, Sendable {
    /// Exactly these pages.
    case range(PageRange)
    /// Any contiguous run of this many pages; edmmd chooses (and may grant more, see `GrowthPolicy`).
    case anywhere(pages: UInt64)
}

/// Why ALLOCATE was refused.
public enum AllocationError: Error, Hashable, Sendable, CustomStringConvertible {
    case ledger(LedgerError)
    case quota(QuotaRefusal)

    public var description: String {
        switch self {
        case .ledger(let error): error.description
        case .quota(let refusal): refusal.description
        }
    }
}

extension EnclaveLedger {
    /// Placement of an "anywhere" allocation of `count` pages with `permissions`: the lowest run of
    /// pooled pages with exactly those permissions that fits, else the lowest hole that fits,
    /// both inside the managed range. Pool first because reused pages cost no EAUG or EACCEPT;
    /// lowest first so that the heap stays packed at the bottom of the managed range and
    /// fragmentation collects at the top, where growth has room. Runs mixing pooled pages and
    /// holes are not considered (a fixed-range ALLOCATE can still take such a run).
    public func placement(pages count: UInt64, permissions: PagePermissions) -> Placement? {
        guard count > 0 else { return nil }
        if let run = pool[Int(permissions.rawValue)].firstRange(ofAtLeast: count, in: managedRange) {
            return Placement(range: PageRange(first: run.first, count: count), fromPool: true, room: count)
        }
        if let gap = pages.firstGap(ofAtLeast: count, in: managedRange) {
            return Placement(range: PageRange(first: gap.first, count: count), fromPool: false, room: gap.count)
        }
        return nil
    }

    /// ALLOCATE of exactly `range`: holes become committed with `permissions` (fresh), pooled
    /// pages become committed again with their own permissions (reused). No quota check.
    public mutating func allocate(_ range: PageRange, permissions: PagePermissions) throws(LedgerError) -> Grant {
        let steps = try planAllocation(range, permissions)
        commit(steps)
        return Self.grant(range, steps)
    }

    /// ALLOCATE with admission control: places "anywhere" requests, charges only fresh pages to
    /// the quotas in `usage`, lets `growth` enlarge "anywhere" grants, and commits the grant.
    public mutating func allocate(
        _ request: AllocationRequest, permissions: PagePermissions, quota: QuotaPolicy, growth policy: GrowthPolicy,
        usage: QuotaUsage
    ) throws(AllocationError) -> Grant {
        let range: PageRange
        switch request {
        case .range(let asked):
            let steps: [Step]
            do { steps = try planAllocation(asked, permissions) } catch { throw .ledger(error) }
            let fresh = steps.reduce(0) { $0 + ($1.old == nil ? $1.range.count : 0) }
            if let refusal = quota.check(asked: fresh, usage: usage) { throw .quota(refusal) }
            commit(steps)
            return Self.grant(asked, steps)
        case .anywhere(let count):
            guard count > 0 else { throw .ledger(.zeroPages(.allocate)) }
            guard let placement = placement(pages: count, permissions: permissions) else {
                throw .ledger(.noContiguousSpace(pages: count, managed: managedRange))
            }
            if placement.fromPool {
                range = placement.range
            } else {
                if let refusal = quota.check(asked: count, usage: usage) { throw .quota(refusal) }
                let pages = policy.grant(
                    asked: count, room: placement.room, headroom: quota.headroom(usage: usage), held: counts.held,
                    state: &growth)
                range = PageRange(first: placement.range.first, count: pages)
            }
        }
        do { return try allocate(range, permissions: permissions) } catch { throw .ledger(error) }
    }

    private func planAllocation(_ range: PageRange, _ permissions: PagePermissions) throws(LedgerError) -> [Step] {
        guard permissions.isValidForSGX else { throw .invalidPermissions(.allocate, permissions) }
        return try plan(.allocate, range) { state in
            switch state {
            case nil: .state(.committed(permissions))
            case .pooled(let kept, _): .state(.committed(kept))
            default: .refused
            }
        }
    }

    private static func grant(_ range: PageRange, _ steps: [Step]) -> Grant {
        var grant = Grant(range: range, fresh: [], reused: [])
        for step in steps {
            if case .pooled(let permissions, _) = step.old {
                if let last = grant.reused.last, last.permissions == permissions, last.range.end == step.range.first {
                    grant.reused[grant.reused.count - 1].range = PageRange(first: last.range.first, end: step.range.end)
                } else {
                    grant.reused.append(Grant.Reused(range: step.range, permissions: permissions))
                }
            } else {
                grant.fresh.append(step.range)
            }
        }
        return grant
    }
}
