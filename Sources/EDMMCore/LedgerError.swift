/// A ledger operation, as named in errors.
public enum LedgerOperation: Hashable, Sendable, CustomStringConvertible {
    case allocate, free, trim, trimAccepted, restrict, relax, makeTCS, reclaim
    /// Recording that a queued ioctl finished for these pages.
    case complete(QueuedOperation)
    /// Putting pages back after their queued ioctl failed or was never issued.
    case revert(QueuedOperation)

    /// True for `complete` and `revert`, which act on queued pages by design.
    public var recordsOutcome: Bool {
        switch self {
        case .complete, .revert: true
        default: false
        }
    }

    public var description: String {
        switch self {
        case .allocate: "ALLOCATE"
        case .free: "FREE"
        case .trim: "TRIM"
        case .trimAccepted: "TRIM_ACCEPTED"
        case .restrict: "RESTRICT"
        case .relax: "RELAX"
        case .makeTCS: "MAKE_TCS"
        case .reclaim: "RECLAIM"
        case .complete(let operation): "completion of \(operation)"
        case .revert(let operation): "revert of \(operation)"
        }
    }
}

/// Why the ledger refused a transition. Page numbers are relative to the enclave base.
public enum LedgerError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Some page of `range` lies outside the range edmmd manages for this enclave.
    case outOfManagedRange(PageRange, managed: PageRange)
    /// `page` (the first offending one) is in a state the operation does not accept; nil = hole.
    case wrongState(LedgerOperation, page: UInt64, actual: PageState?)
    /// `page` (the first offending one) has an ioctl queued or in flight.
    case pendingWork(LedgerOperation, page: UInt64, actual: PageState)
    /// Permissions the SGX instructions reject (write without read).
    case invalidPermissions(LedgerOperation, PagePermissions)
    /// An allocation of zero pages.
    case zeroPages(LedgerOperation)
    /// No free run of `pages` contiguous pages in the managed range (pool or holes).
    case noContiguousSpace(pages: UInt64, managed: PageRange)

    public var description: String {
        switch self {
        case .outOfManagedRange(let range, let managed):
            "\(range) is outside the managed range \(managed)"
        case .wrongState(let operation, let page, let actual):
            "\(operation) not allowed: page \(page) is \(actual.stateDescription)"
        case .pendingWork(let operation, let page, let actual):
            "\(operation) overlaps pending work: page \(page) is \(actual)"
        case .invalidPermissions(let operation, let permissions):
            "\(operation) with invalid permissions \(permissions) (write requires read)"
        case .zeroPages(let operation):
            "\(operation) of zero pages"
        case .noContiguousSpace(let pages, let managed):
            "no \(pages) contiguous free pages in \(managed)"
        }
    }
}
