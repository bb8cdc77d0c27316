import Dispatch
import EDMMCore
import EDMMProtocol

extension EnclaveState {
    /// STATS: the summary, the managed range and every named counter; for a simulated enclave also
    /// the simulated CPU's counts and the comparison of the ledger with the simulated EPCM.
    func stats() -> EnclaveStatsReply {
        publish()
        var named = counters.named
        named += [
            WireCounter("pages_committed", ledger.counts.committed), WireCounter("pages_pooled", ledger.counts.pooled),
            WireCounter("pages_trim_queued", ledger.counts.trimQueued), WireCounter("pages_trimmed", ledger.counts.trimmed),
            WireCounter("pages_remove_queued", ledger.counts.removeQueued),
            WireCounter("pages_restrict_queued", ledger.counts.restrictQueued),
            WireCounter("pages_tcs_queued", ledger.counts.tcsQueued), WireCounter("pages_tcs", ledger.counts.tcs),
            WireCounter("queued_requests", UInt64(queued.count)),
            // 1: pages_committed counts only the pages edmmd has seen (implicit commit).
            WireCounter("committed_lower_bound", identity.committedIsLowerBound ? 1 : 0),
        ]
        named += device?.statsCounters ?? []
        if let epcm = device?.epcm {
            let check = compareWithEPCM(epcm)
            named += [
                WireCounter("ledger_epcm_mismatches", check.mismatches),
                WireCounter("ledger_epcm_checked_pages", check.checkedPages),
                WireCounter("ledger_epcm_unaccepted_pages", check.unacceptedPages),
                WireCounter("ledger_epcm_unseen_pages", check.unseenPages),
            ]
            if let first = check.firstMismatch { logger.notice("ledger differs from the simulated EPCM: \(first)") }
        }
        return EnclaveStatsReply(summary: context.snapshot.summary, managed: WireRange(identity.managed), counters: named)
    }

    struct EPCMComparison {
        var checkedPages: UInt64 = 0
        var mismatches: UInt64 = 0
        /// Fresh pages still waiting for the client's EACCEPT (not mismatches).
        var unacceptedPages: UInt64 = 0
        /// Valid pages a host-only client's enclave grew into without edmmd seeing them (implicit
        /// commit: not mismatches, the reason its committed figure is a lower bound).
        var unseenPages: UInt64 = 0
        var firstMismatch: String?
    }

    /// Compares every page the ledger tracks, and every EPCM-valid page of the managed range, with
    /// the simulated EPCM. Meaningful when the enclave is quiescent (no client EACCEPT running).
    /// The mapping (docs/protocol.md, "STATS counter names"):
    /// committed and pooled pages are accepted REG pages with the ledger's permissions (or, after
    /// EMODPR, REG with PR until the client's EACCEPT); fresh pages the client has not accepted yet
    /// may still be holes or PENDING and are counted apart; trimmed pages are TRIM (MODIFIED until
    /// accepted); TCS pages are TCS; queued pages are still in the state before their ioctl; a page
    /// the ledger does not track is a hole. For a host-only client (implicit commit), a valid page
    /// the ledger does not track is unseen growth, and REG permissions may exceed the ledger's.
    func compareWithEPCM(_ epcm: any EPCMInspector) -> EPCMComparison {
        var result = EPCMComparison()
        var presentTracked: UInt64 = 0
        var confirmed: [PageRange] = []
        for entry in ledger.trackedRanges {
            for page in entry.range.first..<entry.range.end {
                let info = epcm.page(page)
                result.checkedPages += 1
                if info.state != .hole { presentTracked += 1 }
                switch verdict(entry.value, page: page, info) {
                case .match: break
                case .matchAccepted: confirmed.append(PageRange(first: page, count: 1))
                case .unaccepted: result.unacceptedPages += 1
                case .mismatch(let expected):
                    result.mismatches += 1
                    if result.firstMismatch == nil {
                        result.firstMismatch =
                            """
                            page at offset \(hexOffset(page)): ledger \(entry.value), EPCM \(info.state.rawValue) \(info.permissions), \
                            expected \(expected)
                            """
                    }
                }
            }
        }
        for range in confirmed { freshUnaccepted.remove(range) }
        let untracked = untrackedValidPages(epcm, presentTracked: presentTracked, checked: &result.checkedPages)
        if identity.committedIsLowerBound { result.unseenPages = untracked } else { result.mismatches += untracked }
        return result
    }

    private enum Verdict {
        case match
        /// Matches, and shows a fresh page was accepted.
        case matchAccepted
        case unaccepted
        case mismatch(expected: String)
    }

    private func verdict(_ state: PageState, page: UInt64, _ info: EPCMPage) -> Verdict {
        func accepted(_ permissions: PagePermissions) -> Verdict {
            if freshUnaccepted.contains(page) {
                switch info.state {
                case .hole, .regPending: return .unaccepted
                case .reg, .regPR:
                    return info.permissions == permissions ? .matchAccepted : .mismatch(expected: "REG \(permissions)")
                default: return .mismatch(expected: "a fresh REG page")
                }
            }
            let regular = info.state == .reg || info.state == .regPR
            // A host-only client's enclave extends permissions (EMODPE) without its host saying so.
            let extended = identity.committedIsLowerBound && info.permissions.isSuperset(of: permissions)
            return regular && (info.permissions == permissions || extended) ? .match : .mismatch(expected: "REG \(permissions)")
        }
        switch state {
        case .committed(let permissions), .pooled(let permissions, _): return accepted(permissions)
        case .restrictQueued(let from, _), .tcsQueued(let from): return accepted(from)
        case .trimQueued(from: .committed(let permissions)), .trimQueued(from: .pooled(let permissions, _)):
            return accepted(permissions)
        case .trimQueued(from: .tcs), .tcs:
            return info.state == .tcs || info.state == .tcsModified ? .match : .mismatch(expected: "TCS")
        case .trimmed, .removeQueued:
            return info.state == .trim || info.state == .trimModified ? .match : .mismatch(expected: "TRIM")
        }
    }

    /// EPCM-valid pages of the managed range that the ledger does not track. When the managed range
    /// is the whole ELRANGE, the enclave's present-page count gives them at once; otherwise the
    /// page table is walked over the gaps where it has entries (up to `AdoptedState.maxEntriesWalked`),
    /// and the entries read count as checked.
    private func untrackedValidPages(_ epcm: any EPCMInspector, presentTracked: UInt64, checked: inout UInt64) -> UInt64 {
        if identity.managed == PageRange(first: 0, count: identity.size >> Page.shift) {
            let present = epcm.presentPages
            return present > presentTracked ? present - presentTracked : 0
        }
        var gaps: [PageRange] = []
        var cursor = identity.managed.first
        for entry in ledger.states(in: identity.managed) {
            if entry.range.first > cursor { gaps.append(PageRange(first: cursor, end: entry.range.first)) }
            cursor = entry.range.end
        }
        if cursor < identity.managed.end { gaps.append(PageRange(first: cursor, end: identity.managed.end)) }
        var untracked: UInt64 = 0
        let walk = epcm.forEachPresentPage(in: gaps, maxEntries: AdoptedState.maxEntriesWalked) { _, _ in
            untracked += 1
            return true
        }
        checked += walk.entriesVisited
        return untracked
    }
}
