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
