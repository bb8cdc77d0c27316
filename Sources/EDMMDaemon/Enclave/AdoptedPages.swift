import EDMMCore
import EDMMProtocol
import SGXDevice

/// The state REGISTER records for an adopted page: what the enclave's EPCM shows when edmmd can
/// read it (a simulated enclave), so that a re-registration after a crash rebuilds a ledger equal
/// to the EPCM even for pages caught in the middle of a flow.
enum AdoptedState: Equatable {
    /// A REG page: accepted (or with EMODPR done, PR), or EAUGed and not yet accepted.
    case committed(PagePermissions, unaccepted: Bool)
    case tcs
    /// TRIM, whether or not the enclave has EACCEPTed it yet.
    case trimmed

    /// The most page-table entries one REGISTER's adoption reads (or one restore's, per enclave):
    /// 2^24, 32,768 leaf blocks of 512 entries, 64 GiB of ELRANGE in use (docs/protocol.md, REGISTER).
    static let maxEntriesWalked: UInt64 = 1 << 24

    /// Runs of `ranges` (sorted, disjoint) by adopted state: for a simulated enclave each present
    /// page as its EPCM shows it (holes, pages removed before the re-registration, are skipped),
    /// found by walking the page table where it has entries, never the address range; for a
    /// kernel enclave, which offers no query, every page is an accepted RW page.
    ///
    /// The walk stops once it found more than `maxPages` pages (the quota headroom: the REGISTER
    /// will be refused anyway), and refuses to read more than `maxEntries` entries.
    /// One run of adopted pages in one state.
    typealias Run = (range: PageRange, state: AdoptedState)

    static func runs(
        _ ranges: [PageRange], in epcm: (any EPCMInspector)?, maxPages: UInt64 = .max, maxEntries: UInt64 = maxEntriesWalked
    ) throws(WireError) -> [Run] {
        guard let epcm else { return ranges.map { ($0, .committed(.rw, unaccepted: false)) } }
        var runs: [Run] = []
        var pages: UInt64 = 0
        var invalid: (page: UInt64, state: EPCMState)?
        let walk = epcm.forEachPresentPage(in: ranges, maxEntries: maxEntries) { page, info in
            guard let state = AdoptedState(info) else {
                invalid = (page, info.state)
                return false
            }
            if let last = runs.last, last.state == state, last.range.end == page {
                runs[runs.count - 1].range = PageRange(first: last.range.first, end: page + 1)
            } else {
                runs.append((PageRange(first: page, count: 1), state))
            }
            pages += 1
            return pages <= maxPages
        }
        if let invalid {
            throw WireError(
                .invalidPageState, "adopted page at offset \(hexOffset(invalid.page)) has no legal EPCM state",
                detail: .page(offset: invalid.page << Page.shift, state: invalid.state.rawValue))
        }
        if let wanted = walk.budgetWanted {
            throw WireError(
                .invalidArgument,
                """
                the adopted ranges reach more page-table entries than one REGISTER may read (\(maxEntries)); adopt only the ranges the \
                enclave uses
                """,
                detail: .limit(limit: maxEntries, actual: wanted))
        }
        return runs
    }

    /// The adopted state of a present page; nil for an EPCM state no page may have.
    init?(_ info: EPCMPage) {
        switch info.state {
        case .reg, .regPR: self = .committed(info.permissions, unaccepted: false)
        case .regPending: self = .committed(info.permissions, unaccepted: true)
        case .tcs, .tcsModified: self = .tcs
        case .trim, .trimModified: self = .trimmed
        case .hole, .invalid: return nil
        }
    }
}

extension EnclaveLedger {
    /// Records an adopted run in its state, through the ledger's own transitions.
    mutating func adopt(_ range: PageRange, as state: AdoptedState) throws(LedgerError) {
        switch state {
        case .committed(let permissions, _):
            _ = try allocate(range, permissions: permissions)
        case .tcs:
            _ = try allocate(range, permissions: .rw)
            try makeTCS(range)
            try complete(.makeTCS, range)
        case .trimmed:
            _ = try allocate(range, permissions: .rw)
            try trim(range)
            try complete(.trim, range)
        }
    }
}

/// A simulated enclave restored from the FD store after an unclean stop: its stored record may be
/// older than the ioctls the previous daemon ran and the pages its client accepted since, so the
/// EPCM has the last word, page by page (the same states as adopted pages).
struct ReconciledLedger {
    var ledger: EnclaveLedger
    /// Pages the client was granted and may not have EACCEPTed yet.
    var unaccepted: [PageRange] = []
    /// Pages the record shows committed (pool pages are committed after an unclean stop) that the
    /// previous daemon had reclaimed: EMODT(TRIM) done, not yet EACCEPTed. Their RECLAIM notice
    /// may never have been sent; it goes to the first connection that attaches.
    var reclaimed: [PageRange] = []

    /// `record` is the stored ledger (pool pages already settled as committed).
    init(_ record: EnclaveLedger, managed: PageRange, pooledInRecord: [PageRange], epcm: any EPCMInspector) throws(LedgerError) {
        ledger = EnclaveLedger(managedRange: managed)
        var cursor = managed.first
        var gaps: [PageRange] = []
        for entry in record.trackedRanges {
            if entry.range.first > cursor { gaps.append(PageRange(first: cursor, end: entry.range.first)) }
            for page in entry.range.first..<entry.range.end {
                try reconcile(page, recorded: entry.value, epcm, wasPooled: pooledInRecord.contains { $0.contains(page) })
            }
            cursor = entry.range.end
        }
        if cursor < managed.end { gaps.append(PageRange(first: cursor, end: managed.end)) }
        try adoptUntracked(gaps, epcm)
    }

    private mutating func reconcile(_ page: UInt64, recorded: PageState, _ epcm: any EPCMInspector, wasPooled: Bool) throws(LedgerError) {
        let single = PageRange(first: page, count: 1)
        let info = epcm.page(page)
        switch info.state {
        case .hole:
            // Removed, or granted and not yet accepted: only the latter stays.
            guard case .committed(let permissions) = recorded else { return }
            try ledger.adopt(single, as: .committed(permissions, unaccepted: true))
            unaccepted.append(single)
        case .trimModified where wasPooled:
            try ledger.adopt(single, as: .trimmed)
            reclaimed.append(single)
        default:
            try adopt(single, info.state, info.permissions)
        }
    }

    /// Valid pages the record does not track (a grant the client accepted after the last write),
    /// found by walking the page table where it has entries, up to `AdoptedState.maxEntriesWalked`.
    private mutating func adoptUntracked(_ gaps: [PageRange], _ epcm: any EPCMInspector) throws(LedgerError) {
        var found: [(UInt64, EPCMPage)] = []
        _ = epcm.forEachPresentPage(in: gaps, maxEntries: AdoptedState.maxEntriesWalked) { page, info in
            found.append((page, info))
            return true
        }
        for (page, info) in found { try adopt(PageRange(first: page, count: 1), info.state, info.permissions) }
    }

    private mutating func adopt(_ page: PageRange, _ state: EPCMState, _ permissions: PagePermissions) throws(LedgerError) {
        switch state {
        case .hole, .invalid: return
        case .reg, .regPR: try ledger.adopt(page, as: .committed(permissions, unaccepted: false))
        case .regPending:
            try ledger.adopt(page, as: .committed(permissions, unaccepted: true))
            unaccepted.append(page)
        case .tcs, .tcsModified: try ledger.adopt(page, as: .tcs)
        case .trim, .trimModified: try ledger.adopt(page, as: .trimmed)
        }
    }
}
