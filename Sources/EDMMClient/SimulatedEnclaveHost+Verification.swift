import EDMMCore
import SGXSimulator

/// The enclave's own record set against the simulated EPCM, page by page.
public struct EPCMComparison: Sendable, Equatable {
    /// EPCM states of the managed range's present pages (`EPCMState` raw values).
    public var epcmPages: [String: UInt64]
    /// Pages whose EPCM entry contradicts the record (wrong state or permissions, or present
    /// without being tracked).
    public var mismatchedPages: UInt64
    /// Tracked pages in the middle of a flow (trimming, restricting, becoming a TCS).
    public var pagesInTransition: UInt64
    /// The first few disagreements, for humans.
    public var examples: [String]

    public var matches: Bool { mismatchedPages == 0 }
}

extension SimulatedEnclaveHost {
    /// Compares the enclave's record with the EPCM. Meaningful at any time; exact when nothing
    /// is in flight (after `sync()` and `settle()`).
    public func compareWithEPCM() -> EPCMComparison {
        let tracker = self.tracker
        var result = EPCMComparison(epcmPages: [:], mismatchedPages: 0, pagesInTransition: 0, examples: [])
        var tracked: UInt64 = 0
        for entry in tracker.pages {
            for page in entry.range.first..<entry.range.end {
                let info = enclave.pageInfo(offset: page << Page.shift)
                result.epcmPages[info.state.rawValue, default: 0] += 1
                if info.state != .hole { tracked += 1 }
                let (allowed, transitional) = Self.expectation(entry.value, info)
                if transitional { result.pagesInTransition += 1 }
                if !allowed {
                    result.mismatchedPages += 1
                    if result.examples.count < 8 {
                        result.examples.append(
                            "page 0x\(String(page << Page.shift, radix: 16)): enclave says \(entry.value), EPCM says \(info.state.rawValue) \(info.permissions)")
                    }
                }
            }
        }
        let untracked = enclave.presentPages &- UInt64(EnclaveBlueprint.image.count) &- tracked
        if untracked > 0, untracked < 1 << 48 {
            result.mismatchedPages += untracked
            result.epcmPages["untracked", default: 0] += untracked
            result.examples.append("\(untracked) pages present in the EPCM that the enclave never accepted")
        }
        return result
    }

    /// Whether `info` is a possible EPCM entry for a page the enclave records as `page`, and
    /// whether that record is a transient one.
    private static func expectation(_ page: HostPage, _ info: PageInfo) -> (allowed: Bool, transitional: Bool) {
        switch page {
        case .inUse(let p), .freed(let p):
            (info.state == .reg && info.permissions == p, false)
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
