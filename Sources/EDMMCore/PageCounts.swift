/// Pages of one enclave in each state. Every tracked page holds an EPC page, so `epcPages` is
/// what quotas and machine-wide accounting charge to the enclave.
public struct PageCounts: Hashable, Sendable {
    public var committed: UInt64 = 0
    public var pooled: UInt64 = 0
    public var trimQueued: UInt64 = 0
    public var trimmed: UInt64 = 0
    public var removeQueued: UInt64 = 0
    public var restrictQueued: UInt64 = 0
    public var tcsQueued: UInt64 = 0
    public var tcs: UInt64 = 0

    public init() {}

    /// Pages on their way out: EMODT(TRIM) queued, or done and awaiting TRIM_ACCEPTED.
    public var trimming: UInt64 { trimQueued + trimmed }
    /// Pages whose REMOVE_PAGES is queued or in flight.
    public var removing: UInt64 { removeQueued }
    /// Pages the enclave uses: committed (a permission change may be queued) and TCS pages.
    public var held: UInt64 { committed + restrictQueued + tcsQueued + tcs }
    /// Every tracked page.
    public var epcPages: UInt64 {
        committed + pooled + trimQueued + trimmed + removeQueued + restrictQueued + tcsQueued + tcs
    }

    mutating func add(_ pages: UInt64, _ state: PageState?) {
        if let state { withCounter(for: state) { $0 += pages } }
    }

    mutating func subtract(_ pages: UInt64, _ state: PageState?) {
        if let state { withCounter(for: state) { $0 -= pages } }
    }

    private mutating func withCounter(for state: PageState, _ body: (inout UInt64) -> Void) {
        switch state {
        case .committed: body(&committed)
        case .pooled: body(&pooled)
        case .trimQueued: body(&trimQueued)
        case .trimmed: body(&trimmed)
        case .removeQueued: body(&removeQueued)
        case .restrictQueued: body(&restrictQueued)
        case .tcsQueued: body(&tcsQueued)
        case .tcs: body(&tcs)
        }
    }
}
