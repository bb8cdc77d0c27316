import EDMMCore
import SGXDevice

/// One page as the EPCM shows it.
struct EPCMPage: Sendable, Equatable {
    var state: EPCMState
    var permissions: PagePermissions
}

/// How a walk of an enclave's present pages went.
struct EPCMWalk: Sendable, Equatable {
    /// Page-table entries read.
    var entriesVisited: UInt64 = 0
    /// The walk stopped because the next block would have read this many entries, more than its
    /// budget; nil when the budget held.
    var budgetWanted: UInt64?
}

/// Reading an enclave's EPCM: what only a simulated device can offer (no real CPU lets software
/// read the EPCM). The daemon uses it to record adopted pages as they are, to rebuild a ledger
/// after an unclean stop, and to compare its ledger with the EPCM (STATS).
protocol EPCMInspector: Sendable {
    /// The page at `index` (relative to the base).
    func page(_ index: UInt64) -> EPCMPage
    /// EPCM-valid pages of the enclave.
    var presentPages: UInt64 { get }
    /// Calls `visit` with every present page of `ranges` (sorted, disjoint) in page order, until
    /// it returns false, reading at most `maxEntries` page-table entries.
    func forEachPresentPage(in ranges: [PageRange], maxEntries: UInt64, _ visit: (UInt64, EPCMPage) -> Bool) -> EPCMWalk
}
