import EDMMProtocol

/// What one simulated enclave host did, from its own side of the socket.
public struct HostStats: Sendable {
    /// Memory requests sent (ALLOCATE, FREE, TRIM, TRIM_ACCEPTED, RESTRICT, RELAX, MAKE_TCS).
    public var requests: UInt64 = 0
    /// Those of them that need an ioctl (TRIM, TRIM_ACCEPTED, RESTRICT, MAKE_TCS).
    public var ioctlRequests: UInt64 = 0
    public var requestsByVerb: [String: UInt64] = [:]
    /// Request messages sent (one OCALL each).
    public var messages: UInt64 = 0
    /// The most requests one of edmmd's flushes served, over every done reply seen.
    public var maxBatchedRequests: UInt32 = 0
    public var freshPagesAccepted: UInt64 = 0
    public var reusedPages: UInt64 = 0
    public var reclaimNotices: UInt64 = 0
    public var reclaimedPages: UInt64 = 0
    /// Round trips of answered requests, from sending to the reply's arrival.
    public var latency = LatencyHistogram()
    /// EACCEPTs resumed after a not-present #PF (the kernel could not EAUG the page then).
    public var eacceptsResumed: UInt64 = 0
    /// Requests asked again for the rest of their range after edmmd reported
    /// SGX_EPC_PAGE_CONFLICT (another SGX instruction held a page when EMODPR/EMODT reached it).
    public var conflictRetries: UInt64 = 0
    /// Daemon replies and notices the enclave refused.
    public var violations: [HostSafetyViolation] = []
    /// Failures that arrived outside a reply: fire-and-forget errors, failed notice handling.
    public var asyncErrors: [String] = []

    mutating func countSent(_ verb: Verb) {
        requests += 1
        requestsByVerb[verb.description, default: 0] += 1
        switch verb {
        case .trim, .trimAccepted, .restrict, .makeTCS: ioctlRequests += 1
        default: break
        }
    }

    mutating func noteDone(_ reply: DoneReply) {
        if reply.ioctls > 0 { maxBatchedRequests = max(maxBatchedRequests, reply.batchedRequests) }
    }
}
