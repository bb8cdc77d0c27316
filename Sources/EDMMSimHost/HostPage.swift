import EDMMCore

/// What the enclave knows about one of its pages, from its own actions only (never from the
/// daemon's word). A page it does not track is a hole.
public enum HostPage: RangeMapValue, CustomStringConvertible {
    /// Accepted PT_REG page in use, with its EPCM permissions.
    case inUse(PagePermissions)
    /// Given back with FREE: still accepted, edmmd may hand it out again (reused) or reclaim it.
    case freed(PagePermissions)
    /// TRIM sent, or a RECLAIM notice being honoured: EACCEPT(TRIM|MODIFIED) comes next.
    case trimming
    /// EACCEPT(TRIM|MODIFIED) done; TRIM_ACCEPTED sent or about to be.
    case trimAccepted
    /// RESTRICT sent; the page keeps `from` until the EACCEPT(PR) that follows the reply.
    case restricting(from: PagePermissions, to: PagePermissions)
    /// MAKE_TCS sent.
    case becomingTCS
    case tcs

    public var description: String {
        switch self {
        case .inUse(let p): "in use \(p)"
        case .freed(let p): "freed \(p)"
        case .trimming: "trimming"
        case .trimAccepted: "trim accepted"
        case .restricting(let from, let to): "restricting \(from) to \(to)"
        case .becomingTCS: "becoming TCS"
        case .tcs: "TCS"
        }
    }
}
