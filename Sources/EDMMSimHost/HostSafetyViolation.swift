import EDMMCore

/// A daemon reply or notice that the enclave refuses because obeying it would break its own
/// commit tracking. edmmd is untrusted from the enclave's point of view: it could, by claiming a
/// held page is fresh, get the enclave to EACCEPT a page the host removed and re-added, that is,
/// to swap in zeroes (the double-EACCEPT hazard). Offsets are bytes from the enclave base.
public enum HostSafetyViolation: Error, Equatable, Sendable, CustomStringConvertible {
    /// An ALLOCATE (or preheat) grant lists as fresh a page the enclave already holds.
    case doubleAccept(offset: UInt64, heldAs: String)
    /// An ALLOCATE grant lists as reused a page the enclave never freed.
    case reuseOfPageNotFreed(offset: UInt64, heldAs: String)
    /// A RECLAIM notice names a page that is not in the lazy-free pool (in use, or never held).
    case reclaimOfPageNotFreed(offset: UInt64, heldAs: String)
    /// The grant is malformed: reused and fresh do not partition it, it misses the asked range,
    /// or it leaves the managed range.
    case malformedGrant(String)

    public var description: String {
        switch self {
        case .doubleAccept(let offset, let held):
            "refused to EACCEPT page at offset 0x\(String(offset, radix: 16)): edmmd called it fresh but the enclave holds it (\(held))"
        case .reuseOfPageNotFreed(let offset, let held):
            "refused reused page at offset 0x\(String(offset, radix: 16)): the enclave never freed it (\(held))"
        case .reclaimOfPageNotFreed(let offset, let held):
            "refused to give back page at offset 0x\(String(offset, radix: 16)): it is not in the free pool (\(held))"
        case .malformedGrant(let what): "refused grant: \(what)"
        }
    }
}
