import EDMMCore
import EDMMProtocol
import SGXDevice

/// One enclave's request and ioctl counters, owned by its queue and published in its snapshot.
/// The names in `named` are the STATS counter names of docs/protocol.md.
public struct EnclaveCounters: Sendable, Equatable {
    /// Answered requests by verb (index: verb code), successful and failed.
    public var requestsOK = [UInt64](repeating: 0, count: Verb.allCases.count + 1)
    public var requestsFailed = [UInt64](repeating: 0, count: Verb.allCases.count + 1)
    public var ioctlCalls = IoctlKindCounts()
    public var ioctlPages = IoctlKindCounts()
    public var retriesEBUSY: UInt64 = 0
    public var retriesEAGAIN: UInt64 = 0
    public var retriesEINTR: UInt64 = 0
    /// Ioctls that ended in an error (after retries).
    public var ioctlErrors: UInt64 = 0
    /// Pool pages edmmd chose to give back (threshold, pressure or admin), EMODT done.
    public var reclaimedPages: UInt64 = 0
    /// Flushes that ran at least one ioctl, and the most requests one flush served.
    public var flushes: UInt64 = 0
    public var largestFlush: UInt64 = 0
    /// Holes an implicit-commit enclave's requests named, recorded as committed (since this
    /// daemon started: not kept across a restart).
    public var implicitlyCommitted: UInt64 = 0
    /// The fewest ioctls the flushes could have run: one per maximal contiguous run of pages of
    /// one operation (kind and target) in each flush, before retries (docs/benchmarks.md).
    public var ioctlLowerBound: UInt64 = 0

    public init() {}

    public var requests: UInt64 { requestsOK.reduce(0, +) + requestsFailed.reduce(0, +) }
    public var ioctls: UInt64 { ioctlCalls.total }

    mutating func record(_ verb: Verb, ok: Bool) {
        if ok { requestsOK[Int(verb.rawValue)] += 1 } else { requestsFailed[Int(verb.rawValue)] += 1 }
    }

    mutating func record(_ outcome: IoctlRunResult, kind: WireIoctl) {
        ioctlCalls[kind] += UInt64(outcome.ioctlCalls)
        ioctlPages[kind] += outcome.bytesDone / Page.size
        retriesEBUSY += UInt64(outcome.retries.ebusy)
        retriesEAGAIN += UInt64(outcome.retries.eagain)
        retriesEINTR += UInt64(outcome.retries.eintr)
        if !outcome.isComplete { ioctlErrors += 1 }
    }

    /// The counters under their documented names.
    public var named: [WireCounter] {
        var counters: [WireCounter] = []
        for verb in Verb.allCases {
            let name = "\(verb)".lowercased()
            counters.append(WireCounter("requests_\(name)_ok", requestsOK[Int(verb.rawValue)]))
            counters.append(WireCounter("requests_\(name)_failed", requestsFailed[Int(verb.rawValue)]))
        }
        for kind in [WireIoctl.modifyTypes, .restrictPermissions, .removePages] {
            counters.append(WireCounter("ioctl_\(kind.counterName)_calls", ioctlCalls[kind]))
            counters.append(WireCounter("ioctl_\(kind.counterName)_pages", ioctlPages[kind]))
        }
        counters += [
            WireCounter("retries_ebusy", retriesEBUSY), WireCounter("retries_eagain", retriesEAGAIN),
            WireCounter("retries_eintr", retriesEINTR), WireCounter("ioctl_errors", ioctlErrors),
            WireCounter("reclaimed_pages", reclaimedPages), WireCounter("flushes", flushes),
            WireCounter("largest_flush_requests", largestFlush), WireCounter("pages_implicitly_committed", implicitlyCommitted),
            WireCounter("ioctl_lower_bound", ioctlLowerBound),
        ]
        return counters
    }
}

/// A count per SGX2 ioctl.
public struct IoctlKindCounts: Sendable, Equatable {
    public var modifyTypes: UInt64 = 0
    public var restrictPermissions: UInt64 = 0
    public var removePages: UInt64 = 0

    public init() {}

    public var total: UInt64 { modifyTypes + restrictPermissions + removePages }

    public subscript(kind: WireIoctl) -> UInt64 {
        get {
            switch kind {
            case .modifyTypes: modifyTypes
            case .restrictPermissions: restrictPermissions
            case .removePages: removePages
            }
        }
        set {
            switch kind {
            case .modifyTypes: modifyTypes = newValue
            case .restrictPermissions: restrictPermissions = newValue
            case .removePages: removePages = newValue
            }
        }
    }
}

extension WireIoctl {
    /// The kernel's name in lower case, as in counter names (`modify_types`).
    var counterName: String {
        switch self {
        case .modifyTypes: "modify_types"
        case .restrictPermissions: "restrict_permissions"
        case .removePages: "remove_pages"
        }
    }
}

/// One enclave as the rest of the daemon (views, the supervisor, metrics) sees it: a copy its
/// queue publishes after every change.
@dynamicMemberLookup
public struct EnclaveSnapshot: Sendable, Equatable {
    public var identity: EnclaveIdentity
    public var pages: PageCounts
    /// nil: unlimited.
    public var quotaPages: UInt64?
    public var connections: Int
    public var lastActivity: MonotonicInstant
    public var counters: EnclaveCounters

    public subscript<T>(dynamicMember keyPath: KeyPath<EnclaveIdentity, T>) -> T { identity[keyPath: keyPath] }

    /// The enclave as ENCLAVES and STATS report it.
    public var summary: EnclaveSummary {
        let owner = identity.owner
        return EnclaveSummary(
            enclave: identity.handle, label: identity.label, uid: owner.uid, gid: owner.gid, pid: UInt32(bitPattern: owner.pid),
            device: identity.device, base: identity.base, size: identity.size,
            committedPages: pages.committed + pages.restrictQueued + pages.tcsQueued,
            pooledPages: pages.pooled, trimmingPages: pages.trimming, removingPages: pages.removing, tcsPages: pages.tcs,
            quotaPages: quotaPages ?? .max, connections: UInt32(clamping: connections), requests: counters.requests,
            ioctls: counters.ioctls, idleMicros: MonotonicInstant.now.duration(since: lastActivity).microsecondsClamped)
    }
}
