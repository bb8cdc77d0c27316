import EDMMCore

/// The enclave's own record of its pages in the managed range, and the rules it applies to each
/// daemon reply before running any ENCLU leaf for it. Pure bookkeeping, no I/O.
public struct CommitTracker: Sendable {
    /// Where the daemon may place pages (page indices from the enclave base).
    public let managed: PageRange
    public private(set) var pages = RangeMap<HostPage>()

    public init(managed: PageRange) { self.managed = managed }

    /// The pieces of `range` in order: each tracked run with its state, holes as nil.
    public func runs(in range: PageRange) -> [(range: PageRange, state: HostPage?)] {
        var runs: [(range: PageRange, state: HostPage?)] = []
        var cursor = range.first
        for entry in pages.entries(overlapping: range) {
            guard let piece = entry.range.intersection(range) else { continue }
            if piece.first > cursor { runs.append((PageRange(first: cursor, end: piece.first), nil)) }
            runs.append((piece, entry.value))
            cursor = piece.end
        }
        if cursor < range.end { runs.append((PageRange(first: cursor, end: range.end), nil)) }
        return runs
    }

    // MARK: Daemon replies (untrusted)

    /// Checks an ALLOCATE or preheat grant and takes it: reused pages go back in use with the
    /// permissions they were freed with, fresh pages are recorded in use with `permissions`
    /// before the caller EACCEPTs them, so that the same page can never be accepted twice.
    /// Nothing changes when it throws.
    public mutating func admitGrant(
        granted: PageRange, fresh: [PageRange], reused: [PageRange], asked: AskedPages?, permissions: PagePermissions
    ) throws(HostSafetyViolation) {
        guard managed.contains(granted) else { throw .malformedGrant("\(granted) leaves the managed range \(managed)") }
        switch asked {
        case .range(let range)? where !granted.contains(range):
            throw .malformedGrant("\(granted) does not cover the asked \(range)")
        case .count(let count)? where granted.count < count:
            throw .malformedGrant("\(granted) is smaller than the asked \(count) pages")
        default: break
        }
        var cursor = granted.first
        for piece in (fresh + reused).sorted() {
            guard piece.first == cursor, piece.end <= granted.end else {
                throw .malformedGrant("reused and fresh ranges do not partition \(granted)")
            }
            cursor = piece.end
        }
        guard cursor == granted.end else { throw .malformedGrant("reused and fresh ranges do not partition \(granted)") }
        // A page the enclave gave up with EACCEPT(TRIM) may come back fresh even before the reply
        // to its TRIM_ACCEPTED is handled: its contents are gone by the enclave's own choice.
        for range in fresh {
            if let (offset, state) = firstPage(in: range, where: { $0 != nil && $0 != .trimAccepted }) {
                throw .doubleAccept(offset: offset, heldAs: state)
            }
        }
        for range in reused {
            if let (offset, state) = firstPage(in: range, where: { if case .freed = $0 { false } else { true } }) {
                throw .reuseOfPageNotFreed(offset: offset, heldAs: state)
            }
        }
        for range in reused { update(range) { state in if case .freed(let p) = state { .inUse(p) } else { state } } }
        for range in fresh { pages.assign(.inUse(permissions), to: range) }
    }

    /// Checks a RECLAIM notice and takes it: every page must be freed; they become `trimming`.
    public mutating func admitReclaim(_ ranges: [PageRange]) throws(HostSafetyViolation) {
        for range in ranges {
            guard managed.contains(range) else {
                throw .reclaimOfPageNotFreed(offset: range.byteOffset, heldAs: "outside the managed range")
            }
            if let (offset, state) = firstPage(in: range, where: { if case .freed = $0 { false } else { true } }) {
                throw .reclaimOfPageNotFreed(offset: offset, heldAs: state)
            }
        }
        for range in ranges { pages.assign(.trimming, to: range) }
    }

    // MARK: The enclave's own requests

    /// Why a request of the enclave's own cannot be sent: a page is not in the state it needs.
    public struct NotHeld: Error, Equatable, Sendable {
        public var offset: UInt64
        public var state: String
        public init(offset: UInt64, state: String) {
            self.offset = offset
            self.state = state
        }
    }

    public mutating func free(_ range: PageRange) throws(NotHeld) {
        try require(range) { if case .inUse = $0 { true } else { false } }
        update(range) { state in if case .inUse(let p) = state { .freed(p) } else { state } }
    }

    /// TRIM of pages in use or TCS pages.
    public mutating func trim(_ range: PageRange) throws(NotHeld) {
        try require(range) { state in
            switch state {
            case .inUse?, .tcs?: true
            default: false
            }
        }
        pages.assign(.trimming, to: range)
    }

    public mutating func restrict(_ range: PageRange, to permissions: PagePermissions) throws(NotHeld) {
        try require(range) { if case .inUse = $0 { true } else { false } }
        update(range) { state in if case .inUse(let p) = state { .restricting(from: p, to: permissions) } else { state } }
    }

    /// RELAX: the enclave extends the permissions itself (EMODPE), so they change at once.
    public mutating func relax(_ range: PageRange, to permissions: PagePermissions) throws(NotHeld) {
        try require(range) { if case .inUse = $0 { true } else { false } }
        update(range) { state in if case .inUse(let p) = state { .inUse(p.union(permissions)) } else { state } }
    }

    /// MAKE_TCS of a writable page in use (its TCS contents are written before the request).
    public mutating func makeTCS(_ range: PageRange) throws(NotHeld) {
        try require(range) { if case .inUse(let p) = $0 { p.isSuperset(of: .rw) } else { false } }
        pages.assign(.becomingTCS, to: range)
    }

    // MARK: Completions (after the daemon's reply and the enclave's EACCEPTs)

    public mutating func trimAccepted(_ range: PageRange) { update(range) { $0 == .trimming ? .trimAccepted : $0 } }

    /// Freed pages edmmd reclaimed (EMODT(TRIM)) while its notice never reached the enclave (edmmd
    /// died), found and EACCEPTed as TRIM by the enclave after it registered again.
    public mutating func reclaimedWhileAway(_ range: PageRange) {
        update(range) { state in if case .freed = state { .trimAccepted } else { state } }
    }

    public mutating func removed(_ range: PageRange) {
        for run in runs(in: range) where run.state == .trimAccepted { pages.remove(run.range) }
    }

    public mutating func restricted(_ range: PageRange) {
        update(range) { state in if case .restricting(_, let to) = state { .inUse(to) } else { state } }
    }

    public mutating func becameTCS(_ range: PageRange) { update(range) { $0 == .becomingTCS ? .tcs : $0 } }

    /// Puts runs back as they were before a request that the daemon refused.
    public mutating func restore(_ saved: [(range: PageRange, state: HostPage?)]) {
        for run in saved {
            if let state = run.state { pages.assign(state, to: run.range) } else { pages.remove(run.range) }
        }
    }

    // MARK: Helpers

    private func firstPage(in range: PageRange, where offending: (HostPage?) -> Bool) -> (UInt64, String)? {
        runs(in: range).first { offending($0.state) }.map { ($0.range.byteOffset, $0.state.map(\.description) ?? "hole") }
    }

    private func require(_ range: PageRange, _ allowed: (HostPage?) -> Bool) throws(NotHeld) {
        if let (offset, state) = firstPage(in: range, where: { !allowed($0) }) { throw NotHeld(offset: offset, state: state) }
        guard managed.contains(range) else { throw NotHeld(offset: range.byteOffset, state: "outside the managed range") }
    }

    private mutating func update(_ range: PageRange, _ transform: (HostPage?) -> HostPage?) {
        for run in runs(in: range) {
            let next = transform(run.state)
            guard next != run.state else { continue }
            if let next { pages.assign(next, to: run.range) } else { pages.remove(run.range) }
        }
    }
}

/// What an ALLOCATE asked for, for checking the grant.
public enum AskedPages: Sendable, Equatable {
    case range(PageRange)
    case count(UInt64)
}
