import EDMMCore

/// HELLO reply. In simulated mode the message carrying it also carries one descriptor: the
/// machine's simulated EPC, in which clients create their simulated enclaves.
public struct HelloReply: Equatable, Sendable {
    public var version: UInt16
    public var mode: WireDeviceKind
    public var daemonVersion: String
    public var daemonPID: UInt32
    public var limits: ProtocolLimits
    /// Whether this reply's message carries the simulated EPC descriptor.
    public var carriesMachineDescriptor: Bool

    public init(
        version: UInt16, mode: WireDeviceKind, daemonVersion: String, daemonPID: UInt32, limits: ProtocolLimits,
        carriesMachineDescriptor: Bool
    ) {
        self.version = version
        self.mode = mode
        self.daemonVersion = daemonVersion
        self.daemonPID = daemonPID
        self.limits = limits
        self.carriesMachineDescriptor = carriesMachineDescriptor
    }
}

public struct RegisterReply: Equatable, Sendable {
    public var enclave: EnclaveHandle
    public var device: WireDeviceKind
    /// The enclave's quota in pages (`UInt64.max`: unlimited).
    public var quotaPages: UInt64
    /// Preheat grant: fresh ranges the client must EACCEPT.
    public var preheat: [WireRange]
    public init(enclave: EnclaveHandle, device: WireDeviceKind, quotaPages: UInt64, preheat: [WireRange]) {
        self.enclave = enclave
        self.device = device
        self.quotaPages = quotaPages
        self.preheat = preheat
    }
}

public struct AttachReply: Equatable, Sendable {
    public var base: UInt64
    public var size: UInt64
    public var label: String
    public var device: WireDeviceKind
    public var managed: WireRange
    public init(base: UInt64, size: UInt64, label: String, device: WireDeviceKind, managed: WireRange) {
        self.base = base
        self.size = size
        self.label = label
        self.device = device
        self.managed = managed
    }
}

/// ALLOCATE reply. `granted` covers the request (and more if growth was allowed and applied);
/// `reused` + `fresh` partition `granted`. The client EACCEPTs `fresh` pages and must NOT
/// EACCEPT `reused` ones: they are still committed from an earlier FREE.
public struct AllocateReply: Equatable, Sendable {
    public var granted: WireRange
    public var permissions: PagePermissions
    public var reused: [WireRange]
    public var fresh: [WireRange]
    public init(granted: WireRange, permissions: PagePermissions, reused: [WireRange], fresh: [WireRange]) {
        self.granted = granted
        self.permissions = permissions
        self.reused = reused
        self.fresh = fresh
    }
}

/// The reply of FREE, TRIM, TRIM_ACCEPTED, RESTRICT, RELAX, MAKE_TCS, SYNC and UNREGISTER: sent
/// when the request's part of the work is done.
public struct DoneReply: Equatable, Sendable {
    /// Pages the request covered.
    public var pages: UInt64
    /// ioctl calls made for the flush that served this request (0 for bookkeeping-only verbs).
    public var ioctls: UInt32
    /// Requests (this one included) that those ioctls served: 1 means no batching happened.
    public var batchedRequests: UInt32
    public init(pages: UInt64, ioctls: UInt32 = 0, batchedRequests: UInt32 = 1) {
        self.pages = pages
        self.ioctls = ioctls
        self.batchedRequests = batchedRequests
    }
}

/// STATUS reply: the daemon's state.
public struct StatusReply: Equatable, Sendable {
    public var daemonVersion: String
    public var mode: WireDeviceKind
    /// Why this mode was chosen ("--simulate given", "no /dev/sgx_enclave", ...).
    public var modeReason: String
    public var daemonPID: UInt32
    public var uptimeMicros: UInt64
    public var enclaves: UInt32
    public var connections: UInt32
    public var epcTotalBytes: UInt64
    /// Bytes committed to registered enclaves according to the ledgers.
    public var epcCommittedBytes: UInt64
    /// Bytes resident in the EPC (simulated mode: the machine's used pages; kernel mode: unknown, 0).
    public var epcResidentBytes: UInt64
    public var underPressure: Bool
    public var batching: Bool
    public var requestsTotal: UInt64
    public var requestsPerSecond: Double
    public var ioctlsTotal: UInt64
    public var counters: [WireCounter]

    public init(
        daemonVersion: String, mode: WireDeviceKind, modeReason: String, daemonPID: UInt32, uptimeMicros: UInt64,
        enclaves: UInt32, connections: UInt32, epcTotalBytes: UInt64, epcCommittedBytes: UInt64,
        epcResidentBytes: UInt64, underPressure: Bool, batching: Bool, requestsTotal: UInt64,
        requestsPerSecond: Double, ioctlsTotal: UInt64, counters: [WireCounter] = []
    ) {
        self.daemonVersion = daemonVersion
        self.mode = mode
        self.modeReason = modeReason
        self.daemonPID = daemonPID
        self.uptimeMicros = uptimeMicros
        self.enclaves = enclaves
        self.connections = connections
        self.epcTotalBytes = epcTotalBytes
        self.epcCommittedBytes = epcCommittedBytes
        self.epcResidentBytes = epcResidentBytes
        self.underPressure = underPressure
        self.batching = batching
        self.requestsTotal = requestsTotal
        self.requestsPerSecond = requestsPerSecond
        self.ioctlsTotal = ioctlsTotal
        self.counters = counters
    }
}

/// One row of ENCLAVES.
public struct EnclaveSummary: Equatable, Sendable {
    public var enclave: EnclaveHandle
    public var label: String
    public var uid: UInt32
    public var gid: UInt32
    /// The registering process.
    public var pid: UInt32
    public var device: WireDeviceKind
    public var base: UInt64
    public var size: UInt64
    public var committedPages: UInt64
    public var pooledPages: UInt64
    public var trimmingPages: UInt64
    public var removingPages: UInt64
    public var tcsPages: UInt64
    /// `UInt64.max`: unlimited.
    public var quotaPages: UInt64
    public var connections: UInt32
    public var requests: UInt64
    public var ioctls: UInt64
    public var idleMicros: UInt64

    public init(
        enclave: EnclaveHandle, label: String, uid: UInt32, gid: UInt32, pid: UInt32, device: WireDeviceKind,
        base: UInt64, size: UInt64, committedPages: UInt64, pooledPages: UInt64, trimmingPages: UInt64,
        removingPages: UInt64, tcsPages: UInt64, quotaPages: UInt64, connections: UInt32, requests: UInt64,
        ioctls: UInt64, idleMicros: UInt64
    ) {
        self.enclave = enclave
        self.label = label
        self.uid = uid
        self.gid = gid
        self.pid = pid
        self.device = device
        self.base = base
        self.size = size
        self.committedPages = committedPages
        self.pooledPages = pooledPages
        self.trimmingPages = trimmingPages
        self.removingPages = removingPages
        self.tcsPages = tcsPages
        self.quotaPages = quotaPages
        self.connections = connections
        self.requests = requests
        self.ioctls = ioctls
        self.idleMicros = idleMicros
    }

    /// enclave, label length, uid, gid, pid, device, eight u64 page fields, connections, three u64.
    static let minWireSize = 8 + 2 + 4 + 4 + 4 + 1 + 8 * 8 + 4 + 8 * 3

    func encode(_ w: inout WireWriter) {
        w.u64(enclave)
        w.string(label)
        w.u32(uid)
        w.u32(gid)
        w.u32(pid)
        w.u8(device.rawValue)
        for v in [base, size, committedPages, pooledPages, trimmingPages, removingPages, tcsPages, quotaPages] { w.u64(v) }
        w.u32(connections)
        w.u64(requests)
        w.u64(ioctls)
        w.u64(idleMicros)
    }

    static func decode(_ r: inout WireReader, limits: ProtocolLimits) throws(DecodeError) -> EnclaveSummary {
        EnclaveSummary(
            enclave: try r.u64("summary.enclave"), label: try r.string("summary.label", maxBytes: limits.maxLabelBytes),
            uid: try r.u32("summary.uid"), gid: try r.u32("summary.gid"), pid: try r.u32("summary.pid"),
            device: try decodeDevice(&r, "summary.device"), base: try r.u64("summary.base"), size: try r.u64("summary.size"),
            committedPages: try r.u64("summary.committed"), pooledPages: try r.u64("summary.pooled"),
            trimmingPages: try r.u64("summary.trimming"), removingPages: try r.u64("summary.removing"),
            tcsPages: try r.u64("summary.tcs"), quotaPages: try r.u64("summary.quota"),
            connections: try r.u32("summary.connections"), requests: try r.u64("summary.requests"),
            ioctls: try r.u64("summary.ioctls"), idleMicros: try r.u64("summary.idle"))
    }
}

public struct EnclaveListReply: Equatable, Sendable {
    public var enclaves: [EnclaveSummary]
    /// Pass as `startAfter` for the next page; 0 when this was the last page.
    public var nextStartAfter: EnclaveHandle
    /// Enclaves visible to the caller in total.
    public var total: UInt32
    public init(enclaves: [EnclaveSummary], nextStartAfter: EnclaveHandle, total: UInt32) {
        self.enclaves = enclaves
        self.nextStartAfter = nextStartAfter
        self.total = total
    }
}

/// STATS reply: one enclave in detail.
public struct EnclaveStatsReply: Equatable, Sendable {
    public var summary: EnclaveSummary
    public var managed: WireRange
    /// Named counters: requests by verb and result, ioctls and pages by kind, retries, errors,
    /// simulated-CPU counts (exits, EAUG, EACCEPT, EWB ...). Names are documented in docs/protocol.md.
    public var counters: [WireCounter]
    public init(summary: EnclaveSummary, managed: WireRange, counters: [WireCounter]) {
        self.summary = summary
        self.managed = managed
        self.counters = counters
    }
}

public struct ReclaimReply: Equatable, Sendable {
    public var scheduledPages: UInt64
    public var enclaves: UInt32
    public init(scheduledPages: UInt64, enclaves: UInt32) {
        self.scheduledPages = scheduledPages
        self.enclaves = enclaves
    }
}

public struct ReloadReply: Equatable, Sendable {
    public var summary: String
    public init(summary: String) { self.summary = summary }
}

/// A chunk of the Prometheus text exposition; fetch again from `offset + text.utf8.count`
/// until it reaches `totalBytes`. The daemon keeps one rendering per connection while a client
/// pages through it, so the chunks form one consistent scrape.
public struct MetricsReply: Equatable, Sendable {
    public var totalBytes: UInt32
    public var offset: UInt32
    public var text: String
    public init(totalBytes: UInt32, offset: UInt32, text: String) {
        self.totalBytes = totalBytes
        self.offset = offset
        self.text = text
    }
}

/// A successful response operation's body. Its shape follows the request's verb.
public enum ResponseBody: Equatable, Sendable {
    case hello(HelloReply)
    case register(RegisterReply)
    case attach(AttachReply)
    case allocate(AllocateReply)
    case done(DoneReply)
    case status(StatusReply)
    case enclaves(EnclaveListReply)
    case stats(EnclaveStatsReply)
    case reclaim(ReclaimReply)
    case reload(ReloadReply)
    case metrics(MetricsReply)
    case setScope(SetScopeReply)
    case dropScope(DropScopeReply)
    case scopes(ScopeListReply)

    /// Whether this body shape answers `verb`.
    public func answers(_ verb: Verb) -> Bool {
        switch (self, verb) {
        case (.hello, .hello), (.register, .register), (.attach, .attach), (.allocate, .allocate),
            (.status, .status), (.enclaves, .enclaves), (.stats, .stats), (.reclaim, .reclaim), (.reload, .reload),
            (.metrics, .metrics), (.setScope, .setScope), (.dropScope, .dropScope), (.scopes, .scopes):
            true
        case (.done, .free), (.done, .trim), (.done, .trimAccepted), (.done, .restrict), (.done, .relax),
            (.done, .makeTCS), (.done, .sync), (.done, .unregister):
            true
        default:
            false
        }
    }
}
