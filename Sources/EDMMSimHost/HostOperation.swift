import EDMMCore
import EDMMProtocol

/// One memory operation of a simulated enclave, as its runtime would ask for it. Ranges are in
/// pages from the enclave base.
public enum HostOperation: Sendable, Equatable {
    /// ALLOCATE `pages` RW pages wherever edmmd places them (optionally letting it grow the grant).
    case allocate(pages: UInt64, allowGrowth: Bool = false)
    /// ALLOCATE exactly `range`, RW.
    case allocateAt(PageRange)
    /// FREE into the lazy-free pool (fire-and-forget unless the host is configured otherwise).
    case free(PageRange)
    /// TRIM, then EACCEPT(TRIM|MODIFIED) each page, then TRIM_ACCEPTED.
    case trim(PageRange)
    /// RESTRICT, then EACCEPT(REG|PR|permissions) each page.
    case restrict(PageRange, to: PagePermissions)
    /// EMODPE each page, then RELAX (bookkeeping for edmmd).
    case relax(PageRange, to: PagePermissions)
    /// Write a TCS into the page, MAKE_TCS, then EACCEPT(TCS|MODIFIED).
    case makeTCS(page: UInt64)

    var verb: Verb {
        switch self {
        case .allocate, .allocateAt: .allocate
        case .free: .free
        case .trim: .trim
        case .restrict: .restrict
        case .relax: .relax
        case .makeTCS: .makeTCS
        }
    }
}

/// What a host operation achieved.
public enum HostOutcome: Sendable, Equatable {
    /// The grant (pages), and how many of its pages were fresh (EACCEPTed) and reused (not).
    case allocated(PageRange, freshPages: UInt64, reusedPages: UInt64)
    /// The daemon's done reply; nil for a fire-and-forget request.
    case done(DoneReply?)

    public var granted: PageRange? {
        if case .allocated(let range, _, _) = self { return range }
        return nil
    }
}
