import EDMMCore
import EDMMProtocol
import SGXDevice
import SGXSimulator

/// The enclave's own record set against the simulated EPCM, page by page.
public struct EPCMComparison: Sendable, Equatable {
    /// EPCM states of the managed range's present pages (`EPCMState` raw values: "reg", "tcs", ...).
    public var epcmPages: [String: UInt64]
    /// Pages whose EPCM entry contradicts the record: wrong state or permissions, or present
    /// where the enclave holds nothing.
    public var mismatchedPages: UInt64
    /// Tracked pages in the middle of a flow (trimming, restricting, becoming a TCS, or freed
    /// pages edmmd is reclaiming).
    public var pagesInTransition: UInt64
    /// The first few disagreements, for humans.
    public var examples: [String]

    public var matches: Bool { mismatchedPages == 0 }
}

extension SimulatedEnclaveHost {
    /// Compares the enclave's record with the EPCM over the whole managed range, page by page.
    /// Meaningful at any time; exact when nothing is in flight (after `sync()` and `settle()`).
    public func compareWithEPCM() -> EPCMComparison {
        let tracker = self.tracker
        var result = EPCMComparison(epcmPages: [:], mismatchedPages: 0, pagesInTransition: 0, examples: [])
        for run in tracker.runs(in: tracker.managed) {
            for page in run.range.first..<run.range.end {
                let info = enclave.pageInfo(offset: page << Page.shift)
                if info.state != .hole { result.epcmPages[info.state.rawValue, default: 0] += 1 }
                let (allowed, transitional) = run.state.map { Self.expectation($0, info) } ?? (info.state == .hole, false)
                if transitional { result.pagesInTransition += 1 }
                guard !allowed else { continue }
                result.mismatchedPages += 1
                if result.examples.count < 8 {
                    result.examples.append(
                        """
                        page 0x\(String(page << Page.shift, radix: 16)): enclave says \(run.state?.description ?? "hole"), EPCM says \
                        \(info.state.rawValue) \(info.permissions)
                        """
                    )
                }
            }
        }
        return result
    }

    /// Whether `info` is a possible EPCM entry for a page the enclave records as `page`, and
    /// whether that record is a transient one.
    private static func expectation(_ page: HostPage, _ info: PageInfo) -> (allowed: Bool, transitional: Bool) {
        switch page {
        case .inUse(let p):
            (info.state == .reg && info.permissions == p, false)
        case .freed(let p):
            // edmmd may reclaim a freed page at any moment: EMODT(TRIM) done, its notice on the way.
            info.state == .trimModified ? (true, true) : (info.state == .reg && info.permissions == p, false)
        case .restricting(let from, let to):
            ((info.state == .reg && info.permissions == from) || (info.state == .regPR && info.permissions == to), true)
        case .trimming:
            (info.state == .reg || info.state == .tcs || info.state == .trimModified, true)
        case .trimAccepted:
            (info.state == .trim, false)
        case .becomingTCS:
            (info.state == .reg || info.state == .tcsModified, true)
        case .tcs:
            (info.state == .tcs, false)
        }
    }
}

/// edmmd's ledger for one enclave (STATS) against the EPCM of its managed range.
public struct LedgerComparison: Codable, Equatable, Sendable {
    public var committedPages: UInt64
    public var pooledPages: UInt64
    public var trimmingPages: UInt64
    public var removingPages: UInt64
    public var tcsPages: UInt64
    /// edmmd's own page-by-page check (the STATS counter `ledger_epcm_mismatches`), when reported.
    public var ledgerEpcmMismatches: UInt64?
    /// Each disagreement, for humans; empty when the ledger matches.
    public var problems: [String]

    public var matches: Bool { problems.isEmpty }

    /// Compares edmmd's counts by state with the EPCM's: committed + pooled pages (and those whose
    /// EMODT(TRIM) is still queued) are accepted PT_REG pages, TCS pages are PT_TCS, trimmed +
    /// removing pages are PT_TRIM; no page may be EAUGed and left unaccepted; and edmmd's own
    /// check must find nothing.
    public init(stats: EnclaveStatsReply, epcm: EPCMComparison) {
        let s = stats.summary
        let e = epcm.epcmPages
        var problems: [String] = []
        // Pages whose EMODT(TRIM) is queued (a reclaim edmmd started on its own while the enclave
        // was at rest) count as trimming, and are still regular pages in the EPCM.
        let trimQueued = min(s.trimmingPages, stats.counters.first { $0.name == "pages_trim_queued" }?.value ?? 0)
        let regular = (e["reg"] ?? 0) + (e["reg_pr"] ?? 0)
        if s.committedPages + s.pooledPages + trimQueued != regular {
            problems.append(
                """
                edmmd counts \(s.committedPages) committed + \(s.pooledPages) pooled + \(trimQueued) queued for trimming pages, the EPCM \
                has \(regular) regular pages
                """
            )
        }
        let tcs = (e["tcs"] ?? 0) + (e["tcs_modified"] ?? 0)
        if s.tcsPages != tcs { problems.append("edmmd counts \(s.tcsPages) TCS pages, the EPCM has \(tcs)") }
        let trim = (e["trim"] ?? 0) + (e["trim_modified"] ?? 0)
        if s.trimmingPages - trimQueued + s.removingPages != trim {
            problems.append(
                "edmmd counts \(s.trimmingPages - trimQueued) trimmed + \(s.removingPages) removing pages, the EPCM has \(trim) trim pages")
        }
        if let pending = e["reg_pending"], pending > 0 { problems.append("\(pending) pages are EAUGed but never accepted") }
        let mismatches = stats.counters.first { $0.name == "ledger_epcm_mismatches" }?.value
        if let mismatches, mismatches > 0 {
            problems.append("edmmd's own check finds \(mismatches) pages where its ledger and the EPCM differ")
        }
        self.init(
            committedPages: s.committedPages, pooledPages: s.pooledPages, trimmingPages: s.trimmingPages,
            removingPages: s.removingPages, tcsPages: s.tcsPages, ledgerEpcmMismatches: mismatches, problems: problems)
    }

    public init(
        committedPages: UInt64, pooledPages: UInt64, trimmingPages: UInt64, removingPages: UInt64, tcsPages: UInt64,
        ledgerEpcmMismatches: UInt64?, problems: [String]
    ) {
        self.committedPages = committedPages
        self.pooledPages = pooledPages
        self.trimmingPages = trimmingPages
        self.removingPages = removingPages
        self.tcsPages = tcsPages
        self.ledgerEpcmMismatches = ledgerEpcmMismatches
        self.problems = problems
    }
}

/// The EPCM against both the enclave's own record and edmmd's ledger, at rest.
public struct HostVerification: Sendable {
    public var epcm: EPCMComparison
    /// nil when STATS failed (see `problems`).
    public var ledger: LedgerComparison?
    /// Failures of the verification itself (SYNC, STATS), or an enclave that never came to rest.
    public var problems: [String]

    public var matches: Bool { epcm.matches && (ledger?.matches ?? false) && problems.isEmpty }
}

extension SimulatedEnclaveHost {
    /// Brings the enclave to rest (TRIM_ACCEPTED backlog sent, SYNC, RECLAIM notices honoured)
    /// and compares the EPCM with the enclave's record and with edmmd's ledger. A notice can
    /// still arrive meanwhile (another enclave's growth puts the EPC under pressure), so the
    /// comparison is repeated, up to five times, until none came in while it ran.
    public func verify() async -> HostVerification {
        var attempt = 0
        while true {
            attempt += 1
            var problems: [String] = []
            let noticesBefore = stats.reclaimNotices
            await settle()
            do {
                try await sync()
            } catch {
                problems.append("SYNC: \(error)")
            }
            var ledger: LedgerComparison?
            let epcm: EPCMComparison
            do {
                let reply = try await connection.stats(handle)
                epcm = compareWithEPCM()
                ledger = LedgerComparison(stats: reply, epcm: epcm)
            } catch {
                epcm = compareWithEPCM()
                problems.append("STATS: \(error)")
            }
            await settle()
            let atRest = stats.reclaimNotices == noticesBefore && epcm.pagesInTransition == 0
            if atRest || attempt == 5 {
                if !atRest { problems.append("the enclave was still changing after \(attempt) comparisons") }
                return HostVerification(epcm: epcm, ledger: ledger, problems: problems)
            }
        }
    }
}
