import EDMMCore
import SGXSimulator

/// The enclave's own record set against the simulated EPCM, page by page.
public struct EPCMComparison: Sendable, Equatable {
    /// EPCM states of the managed range's present pages (`EPCMState` raw values: "reg", "tcs", ...).
    public var epcmPages: [String: UInt64]
    /// Pages whose EPCM entry contradicts the record: wrong state or permissions, or present
    /// where the enclave holds nothing.
    public var mismatchedPages: UInt64
    /// Tracked pages in the middle of a flow (trimming, restricting, becoming a TCS).
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
                        "page 0x\(String(page << Page.shift, radix: 16)): enclave says \(run.state?.description ?? "hole"), EPCM says \(info.state.rawValue) \(info.permissions)")
                }
            }
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
