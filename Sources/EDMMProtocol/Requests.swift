import EDMMCore

/// HELLO: version and capability exchange. Must be the first request of a connection.
public struct HelloRequest: Equatable, Sendable {
    public var minVersion: UInt16
    public var maxVersion: UInt16
    /// Free-form client identification for logs ("gramine-pal 1.8", "edmm-sim").
    public var clientName: String
    public init(minVersion: UInt16 = ProtocolVersion.current, maxVersion: UInt16 = ProtocolVersion.current, clientName: String) {
        self.minVersion = minVersion
        self.maxVersion = maxVersion
        self.clientName = clientName
    }
}

/// REGISTER: the enclave descriptor travels in the message's SCM_RIGHTS data; `descriptorIndex`
/// says which of the message's descriptors belongs to this operation.
public struct RegisterRequest: Equatable, Sendable {
    public var descriptorIndex: UInt8
    /// ELRANGE: SECS.BASEADDR and SECS.SIZE.
    public var base: UInt64
    public var size: UInt64
    /// A short name for humans and metrics: 1...64 bytes of [A-Za-z0-9._-].
    public var label: String
    /// Pages to grant at once (the client EACCEPTs them); 0 for none.
    public var preheatPages: UInt64
    /// The part of ELRANGE edmmd may place allocations in; length 0 means the whole ELRANGE.
    public var managed: WireRange
    /// Ranges the enclave already committed and accepted (e.g. re-registration after a daemon
    /// restart); they are adopted into the ledger as committed and count against quotas.
    public var adopted: [WireRange]

    public init(
        descriptorIndex: UInt8 = 0, base: UInt64, size: UInt64, label: String, preheatPages: UInt64 = 0,
        managed: WireRange = WireRange(offset: 0, length: 0), adopted: [WireRange] = []
    ) {
        self.descriptorIndex = descriptorIndex
        self.base = base
        self.size = size
        self.label = label
        self.preheatPages = preheatPages
        self.managed = managed
        self.adopted = adopted
    }
}

/// ALLOCATE: commit `length` bytes at `offset`, or anywhere in the managed range when `offset`
/// is `WireRange.anywhere`.
public struct AllocateRequest: Equatable, Sendable {
    public var enclave: EnclaveHandle
    public var offset: UInt64
    public var length: UInt64
    public var permissions: PagePermissions
    /// Let the growth policy grant a larger contiguous range than asked.
    public var allowGrowth: Bool
    public init(
        enclave: EnclaveHandle, offset: UInt64 = WireRange.anywhere, length: UInt64, permissions: PagePermissions = .rw,
        allowGrowth: Bool = false
    ) {
        self.enclave = enclave
        self.offset = offset
        self.length = length
        self.permissions = permissions
        self.allowGrowth = allowGrowth
    }
}

/// FREE, TRIM, TRIM_ACCEPTED and MAKE_TCS: an enclave and a range.
public struct RangeRequest: Equatable, Sendable {
    public var enclave: EnclaveHandle
    public var range: WireRange
    public init(enclave: EnclaveHandle, range: WireRange) {
        self.enclave = enclave
        self.range = range
    }
}

/// RESTRICT and RELAX: an enclave, a range and the new permissions.
public struct PermissionsRequest: Equatable, Sendable {
    public var enclave: EnclaveHandle
    public var range: WireRange
    public var permissions: PagePermissions
    public init(enclave: EnclaveHandle, range: WireRange, permissions: PagePermissions) {
        self.enclave = enclave
        self.range = range
        self.permissions = permissions
    }
}

/// ENCLAVES: one page of the enclave list, ordered by handle.
public struct EnclaveListRequest: Equatable, Sendable {
    /// List handles greater than this (0 to start).
    public var startAfter: EnclaveHandle
    public var maxCount: UInt16
    public init(startAfter: EnclaveHandle = 0, maxCount: UInt16 = 256) {
        self.startAfter = startAfter
        self.maxCount = maxCount
    }
}

/// RECLAIM (admin): give lazy-pool pages back now.
public struct ReclaimRequest: Equatable, Sendable {
    /// 0 means every enclave.
    public var enclave: EnclaveHandle
    /// Pages to reclaim at most; 0 means the whole pool.
    public var targetPages: UInt64
    public init(enclave: EnclaveHandle = 0, targetPages: UInt64 = 0) {
        self.enclave = enclave
        self.targetPages = targetPages
    }
}

/// METRICS: a chunk of the Prometheus text exposition, starting at `offset`.
public struct MetricsRequest: Equatable, Sendable {
    public var offset: UInt32
    public init(offset: UInt32 = 0) { self.offset = offset }
}

/// A request operation's body.
public enum Request: Equatable, Sendable {
    case hello(HelloRequest)
    case register(RegisterRequest)
    case attach(EnclaveHandle)
    case unregister(EnclaveHandle)
    case allocate(AllocateRequest)
    case free(RangeRequest)
    case trim(RangeRequest)
    case trimAccepted(RangeRequest)
    case restrict(PermissionsRequest)
    case relax(PermissionsRequest)
    case makeTCS(RangeRequest)
    case sync(EnclaveHandle)
    case status
    case enclaves(EnclaveListRequest)
    case stats(EnclaveHandle)
    case reclaim(ReclaimRequest)
    case reload
    case metrics(MetricsRequest)
    case setScope(SetScopeRequest)
    case dropScope(DropScopeRequest)
    case scopes(ScopeListRequest)

    public var verb: Verb {
        switch self {
        case .hello: .hello
        case .register: .register
        case .attach: .attach
        case .unregister: .unregister
        case .allocate: .allocate
        case .free: .free
        case .trim: .trim
        case .trimAccepted: .trimAccepted
        case .restrict: .restrict
        case .relax: .relax
        case .makeTCS: .makeTCS
        case .sync: .sync
        case .status: .status
        case .enclaves: .enclaves
        case .stats: .stats
        case .reclaim: .reclaim
        case .reload: .reload
        case .metrics: .metrics
        case .setScope: .setScope
        case .dropScope: .dropScope
        case .scopes: .scopes
        }
    }

    /// The enclave the request targets, if any (the daemon routes on it).
    public var enclave: EnclaveHandle? {
        switch self {
        case .attach(let e), .unregister(let e), .sync(let e), .stats(let e): e
        case .allocate(let a): a.enclave
        case .free(let r), .trim(let r), .trimAccepted(let r), .makeTCS(let r): r.enclave
        case .restrict(let p), .relax(let p): p.enclave
        case .reclaim(let r): r.enclave == 0 ? nil : r.enclave
        case .hello, .register, .status, .enclaves, .reload, .metrics, .setScope, .dropScope, .scopes: nil
        }
    }

    func encode(_ w: inout WireWriter) {
        switch self {
        case .hello(let h):
            w.u16(h.minVersion)
            w.u16(h.maxVersion)
            w.string(h.clientName)
        case .register(let r):
            w.u8(r.descriptorIndex)
            w.u64(r.base)
            w.u64(r.size)
            w.string(r.label)
            w.u64(r.preheatPages)
            r.managed.encode(&w)
            w.list(r.adopted) { w, range in range.encode(&w) }
        case .attach(let e), .unregister(let e), .sync(let e), .stats(let e):
            w.u64(e)
        case .allocate(let a):
            w.u64(a.enclave)
            w.u64(a.offset)
            w.u64(a.length)
            w.u8(a.permissions.rawValue)
            w.bool(a.allowGrowth)
        case .free(let r), .trim(let r), .trimAccepted(let r), .makeTCS(let r):
            w.u64(r.enclave)
            r.range.encode(&w)
        case .restrict(let p), .relax(let p):
            w.u64(p.enclave)
            p.range.encode(&w)
            w.u8(p.permissions.rawValue)
        case .status, .reload:
            break
        case .enclaves(let q):
            w.u64(q.startAfter)
            w.u16(q.maxCount)
        case .reclaim(let r):
            w.u64(r.enclave)
            w.u64(r.targetPages)
        case .metrics(let m):
            w.u32(m.offset)
        case .setScope(let s):
            s.encode(&w)
        case .dropScope(let d):
            d.encode(&w)
        case .scopes(let q):
            w.u32(q.offset)
            w.u16(q.maxCount)
        }
    }

    static func decode(verb: Verb, _ r: inout WireReader, limits: ProtocolLimits) throws(DecodeError) -> Request {
        let request: Request
        switch verb {
        case .hello:
            request = .hello(
                HelloRequest(
                    minVersion: try r.u16("hello.minVersion"), maxVersion: try r.u16("hello.maxVersion"),
                    clientName: try r.string("hello.clientName", maxBytes: 256)))
        case .register:
            request = .register(
                RegisterRequest(
                    descriptorIndex: try r.u8("register.descriptorIndex"), base: try r.u64("register.base"),
                    size: try r.u64("register.size"), label: try r.string("register.label", maxBytes: limits.maxLabelBytes),
                    preheatPages: try r.u64("register.preheatPages"), managed: try WireRange.decode(&r, "register.managed"),
                    adopted: try r.list("register.adopted", maxCount: limits.maxRangesPerList, minElementBytes: WireRange.wireSize) {
                        (r: inout WireReader) throws(DecodeError) in try WireRange.decode(&r, "register.adopted[]")
                    }))
        case .attach: request = .attach(try r.u64("attach.enclave"))
        case .unregister: request = .unregister(try r.u64("unregister.enclave"))
        case .sync: request = .sync(try r.u64("sync.enclave"))
        case .stats: request = .stats(try r.u64("stats.enclave"))
        case .allocate:
            request = .allocate(
                AllocateRequest(
                    enclave: try r.u64("allocate.enclave"), offset: try r.u64("allocate.offset"),
                    length: try r.u64("allocate.length"), permissions: try PagePermissions.decode(&r, "allocate.permissions"),
                    allowGrowth: try r.bool("allocate.allowGrowth")))
        case .free: request = .free(try decodeRange(&r, "free"))
        case .trim: request = .trim(try decodeRange(&r, "trim"))
        case .trimAccepted: request = .trimAccepted(try decodeRange(&r, "trimAccepted"))
        case .makeTCS: request = .makeTCS(try decodeRange(&r, "makeTCS"))
        case .restrict: request = .restrict(try decodePermissions(&r, "restrict"))
        case .relax: request = .relax(try decodePermissions(&r, "relax"))
        case .status: request = .status
        case .reload: request = .reload
        case .enclaves:
            request = .enclaves(EnclaveListRequest(startAfter: try r.u64("enclaves.startAfter"), maxCount: try r.u16("enclaves.maxCount")))
        case .reclaim:
            request = .reclaim(ReclaimRequest(enclave: try r.u64("reclaim.enclave"), targetPages: try r.u64("reclaim.targetPages")))
        case .metrics:
            request = .metrics(MetricsRequest(offset: try r.u32("metrics.offset")))
        case .setScope: request = .setScope(try SetScopeRequest.decode(&r))
        case .dropScope: request = .dropScope(try DropScopeRequest.decode(&r))
        case .scopes: request = .scopes(ScopeListRequest(offset: try r.u32("scopes.offset"), maxCount: try r.u16("scopes.maxCount")))
        }
        try r.expectEnd("\(verb) body")
        return request
    }

    private static func decodeRange(_ r: inout WireReader, _ name: String) throws(DecodeError) -> RangeRequest {
        RangeRequest(enclave: try r.u64("\(name).enclave"), range: try WireRange.decode(&r, "\(name).range"))
    }

    private static func decodePermissions(_ r: inout WireReader, _ name: String) throws(DecodeError) -> PermissionsRequest {
        PermissionsRequest(
            enclave: try r.u64("\(name).enclave"), range: try WireRange.decode(&r, "\(name).range"),
            permissions: try PagePermissions.decode(&r, "\(name).permissions"))
    }
}
