import EDMMCore
import EDMMProtocol
import SGXSimulator

/// The state REGISTER records for an adopted page: what the enclave's EPCM shows when edmmd can
/// read it (a simulated enclave), so that a re-registration after a crash rebuilds a ledger equal
/// to the EPCM even for pages caught in the middle of a flow.
enum AdoptedState: Equatable {
    /// A REG page: accepted (or with EMODPR done, PR), or EAUGed and not yet accepted.
    case committed(PagePermissions, unaccepted: Bool)
    case tcs
    /// TRIM, whether or not the enclave has EACCEPTed it yet.
    case trimmed

    /// Runs of `ranges` by adopted state: for a simulated enclave each page as its EPCM shows it
    /// (holes, pages removed before the re-registration, are skipped); for a kernel enclave, which
    /// offers no query, every page is an accepted RW page.
    static func runs(_ ranges: [PageRange], in simulated: SimulatedEnclave?) -> Result<[(range: PageRange, state: AdoptedState)], WireError> {
        guard let simulated else { return .success(ranges.map { ($0, .committed(.rw, unaccepted: false)) }) }
        var runs: [(range: PageRange, state: AdoptedState)] = []
        for range in ranges {
            for page in range.first..<range.end {
                let info = simulated.pageInfo(offset: page << Page.shift)
                let state: AdoptedState
                switch info.state {
                case .hole: continue
                case .reg, .regPR: state = .committed(info.permissions, unaccepted: false)
                case .regPending: state = .committed(info.permissions, unaccepted: true)
                case .tcs, .tcsModified: state = .tcs
                case .trim, .trimModified: state = .trimmed
                case .invalid:
                    return .failure(
                        WireError(
                            .invalidPageState, "adopted page at offset \(hexOffset(page)) has no legal EPCM state",
                            detail: .page(offset: page << Page.shift, state: info.state.rawValue)))
                }
                if let last = runs.last, last.state == state, last.range.end == page {
                    runs[runs.count - 1].range = PageRange(first: last.range.first, end: page + 1)
                } else {
                    runs.append((PageRange(first: page, count: 1), state))
                }
            }
        }
        return .success(runs)
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
    init(_ record: EnclaveLedger, managed: PageRange, pooledInRecord: [PageRange], enclave: SimulatedEnclave) throws(LedgerError) {
        ledger = EnclaveLedger(managedRange: managed)
        var cursor = managed.first
        var walked: UInt64 = 0
        for entry in record.trackedRanges {
            if entry.range.first > cursor { try adoptUntracked(PageRange(first: cursor, end: entry.range.first), enclave, &walked) }
            for page in entry.range.first..<entry.range.end {
                try reconcile(page, recorded: entry.value, enclave, wasPooled: pooledInRecord.contains { $0.contains(page) })
            }
            cursor = entry.range.end
        }
        if cursor < managed.end { try adoptUntracked(PageRange(first: cursor, end: managed.end), enclave, &walked) }
    }

    private mutating func reconcile(_ page: UInt64, recorded: PageState, _ enclave: SimulatedEnclave, wasPooled: Bool) throws(LedgerError) {
        let single = PageRange(first: page, count: 1)
        let info = enclave.pageInfo(offset: page << Page.shift)
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
    /// walked page by page up to 2^20 pages.
    private mutating func adoptUntracked(_ gap: PageRange, _ enclave: SimulatedEnclave, _ walked: inout UInt64) throws(LedgerError) {
        for page in gap.first..<gap.end where walked < 1 << 20 {
            walked += 1
            let info = enclave.pageInfo(offset: page << Page.shift)
            if info.state != .hole { try adopt(PageRange(first: page, count: 1), info.state, info.permissions) }
        }
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
