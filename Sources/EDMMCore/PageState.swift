/// What edmmd knows about one page of an enclave it manages. A page edmmd does not track is a
/// hole (`nil` wherever a `PageState?` appears): either never granted or removed again.
///
///     hole ─ALLOCATE→ committed ─FREE→ pooled ─ALLOCATE (reuse)→ committed
///     committed | pooled | tcs ─TRIM or RECLAIM→ trimQueued ─EMODT done→ trimmed
///     trimmed ─TRIM_ACCEPTED→ removeQueued ─REMOVE_PAGES done→ hole
///     committed ─RESTRICT→ restrictQueued ─EMODPR done→ committed (fewer permissions)
///     committed ─MAKE_TCS→ tcsQueued ─EMODT done→ tcs
///
/// A queued state remembers where the page came from, so that a failed ioctl can put it back.
public enum PageState: RangeMapValue, Hashable, CustomStringConvertible {
    /// Granted to the client; the EPCM permissions edmmd last knew of.
    case committed(PagePermissions)
    /// Freed into the lazy-free pool at `since`; still committed in the EPC.
    case pooled(PagePermissions, since: MonotonicInstant)
    /// EMODT(TRIM) queued or in flight.
    case trimQueued(from: TrimOrigin)
    /// EMODT(TRIM) done; waiting for the client's EACCEPTs and TRIM_ACCEPTED.
    case trimmed
    /// REMOVE_PAGES queued or in flight.
    case removeQueued
    /// EMODPR queued or in flight; the page stays usable with its old permissions until then.
    case restrictQueued(from: PagePermissions, to: PagePermissions)
    /// EMODT(TCS) queued or in flight.
    case tcsQueued(from: PagePermissions)
    /// A TCS page; it can only be trimmed from here.
    case tcs

    /// The settled state a trimQueued page returns to if its EMODT fails.
    public enum TrimOrigin: Hashable, Sendable {
        case committed(PagePermissions)
        case pooled(PagePermissions, since: MonotonicInstant)
        case tcs

        var state: PageState {
            switch self {
            case .committed(let permissions): .committed(permissions)
            case .pooled(let permissions, let since): .pooled(permissions, since: since)
            case .tcs: .tcs
            }
        }
    }

    /// True while an ioctl for the page is queued or in flight: no other request may touch it.
    public var isPending: Bool {
        switch self {
        case .trimQueued, .removeQueued, .restrictQueued, .tcsQueued: true
        case .committed, .pooled, .trimmed, .tcs: false
        }
    }

    /// Pooled pages rank by the time they were freed (oldest first), everything else last.
    public var rank: UInt64 {
        if case .pooled(_, let since) = self { return Swift.min(since.nanoseconds, .max - 1) }
        return .max
    }

    public var description: String {
        switch self {
        case .committed(let permissions): "committed \(permissions)"
        case .pooled(let permissions, let since): "pooled \(permissions) since \(since)"
        case .trimQueued: "trim queued"
        case .trimmed: "trimmed"
        case .removeQueued: "remove queued"
        case .restrictQueued(_, let to): "restrict to \(to) queued"
        case .tcsQueued: "TCS conversion queued"
        case .tcs: "TCS"
        }
    }
}

extension Optional where Wrapped == PageState {
    /// "hole" for an untracked page.
    public var stateDescription: String { self?.description ?? "hole" }
}
