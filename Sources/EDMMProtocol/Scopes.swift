import EDMMCore

/// The longest pod UID and container ID on the wire (a UUID is 36 bytes, a container ID 64).
public let maxScopeKeyBytes = 64
/// The longest namespace, pod or container name (a Kubernetes DNS subdomain is at most 253).
public let maxScopeNameBytes = 253

/// SET_SCOPE (admin): register a Kubernetes scope, a container of a pod or the pod itself, with
/// its names and its own quota. Registering again replaces both.
public struct SetScopeRequest: Equatable, Sendable {
    public var podUID: String
    /// Empty: the pod itself.
    public var containerID: String
    public var namespace: String
    public var pod: String
    public var container: String
    /// The scope's own quota; `UInt64.max`: none (a container falls back to its pod's, then to
    /// the daemon's default).
    public var quotaPages: UInt64

    public init(podUID: String, containerID: String = "", namespace: String, pod: String, container: String = "", quotaPages: UInt64 = .max)
    {
        self.podUID = podUID
        self.containerID = containerID
        self.namespace = namespace
        self.pod = pod
        self.container = container
        self.quotaPages = quotaPages
    }

    func encode(_ w: inout WireWriter) {
        for text in [podUID, containerID, namespace, pod, container] { w.string(text) }
        w.u64(quotaPages)
    }

    static func decode(_ r: inout WireReader) throws(DecodeError) -> SetScopeRequest {
        SetScopeRequest(
            podUID: try r.string("setScope.podUID", maxBytes: maxScopeKeyBytes),
            containerID: try r.string("setScope.containerID", maxBytes: maxScopeKeyBytes),
            namespace: try r.string("setScope.namespace", maxBytes: maxScopeNameBytes),
            pod: try r.string("setScope.pod", maxBytes: maxScopeNameBytes),
            container: try r.string("setScope.container", maxBytes: maxScopeNameBytes), quotaPages: try r.u64("setScope.quotaPages"))
    }
}

/// DROP_SCOPE (admin): forget a container's scope, or a pod's with all its containers. Enclaves
/// still registered in it stay, under the default quota, until their connections close.
public struct DropScopeRequest: Equatable, Sendable {
    public var podUID: String
    /// Empty: the pod and all its containers.
    public var containerID: String

    public init(podUID: String, containerID: String = "") {
        self.podUID = podUID
        self.containerID = containerID
    }

    func encode(_ w: inout WireWriter) {
        w.string(podUID)
        w.string(containerID)
    }

    static func decode(_ r: inout WireReader) throws(DecodeError) -> DropScopeRequest {
        DropScopeRequest(
            podUID: try r.string("dropScope.podUID", maxBytes: maxScopeKeyBytes),
            containerID: try r.string("dropScope.containerID", maxBytes: maxScopeKeyBytes))
    }
}

/// SCOPES: one page of the scopes the caller may see, ordered by pod UID and container ID.
public struct ScopeListRequest: Equatable, Sendable {
    /// Scopes to skip.
    public var offset: UInt32
    /// 0: as many as fit in one message.
    public var maxCount: UInt16

    public init(offset: UInt32 = 0, maxCount: UInt16 = 0) {
        self.offset = offset
        self.maxCount = maxCount
    }
}

public struct SetScopeReply: Equatable, Sendable {
    /// Enclaves registered in the scope now, and the EPC pages they hold.
    public var enclaves: UInt32
    public var usedPages: UInt64

    public init(enclaves: UInt32, usedPages: UInt64) {
        self.enclaves = enclaves
        self.usedPages = usedPages
    }
}

public struct DropScopeReply: Equatable, Sendable {
    /// Scopes forgotten (a pod's counts its containers), and enclaves still registered in them.
    public var scopes: UInt32
    public var enclaves: UInt32

    public init(scopes: UInt32, enclaves: UInt32) {
        self.scopes = scopes
        self.enclaves = enclaves
    }
}

/// One row of SCOPES: a registered scope, or one that only has enclaves (names empty).
public struct ScopeSummary: Equatable, Sendable {
    public var podUID: String
    /// Empty for the pod itself.
    public var containerID: String
    public var namespace: String
    public var pod: String
    public var container: String
    /// Its own quota (`UInt64.max`: none).
    public var quotaPages: UInt64
    /// The limit its enclaves' allocations are checked against (its own, its pod's, or the
    /// default; `UInt64.max`: unlimited). A pod's row gives its own.
    public var effectiveQuotaPages: UInt64
    /// EPC pages its enclaves hold (a pod's row: all its containers').
    public var usedPages: UInt64
    /// Its enclaves' handles (a pod's row: all its containers'), at most `maxRangesPerList`.
    public var enclaves: [EnclaveHandle]
    /// Registered by SET_SCOPE (false: known only from its enclaves' peers).
    public var registered: Bool

    public init(
        podUID: String, containerID: String, namespace: String, pod: String, container: String, quotaPages: UInt64,
        effectiveQuotaPages: UInt64, usedPages: UInt64, enclaves: [EnclaveHandle], registered: Bool
    ) {
        self.podUID = podUID
        self.containerID = containerID
        self.namespace = namespace
        self.pod = pod
        self.container = container
        self.quotaPages = quotaPages
        self.effectiveQuotaPages = effectiveQuotaPages
        self.usedPages = usedPages
        self.enclaves = enclaves
        self.registered = registered
    }

    /// Five strings, three u64, the handle list's count, the bool.
    static let minWireSize = 5 * 2 + 3 * 8 + 4 + 1

    /// Its size on the wire.
    public var wireSize: Int {
        Self.minWireSize + [podUID, containerID, namespace, pod, container].reduce(0) { $0 + $1.utf8.count } + 8 * enclaves.count
    }

    func encode(_ w: inout WireWriter) {
        for text in [podUID, containerID, namespace, pod, container] { w.string(text) }
        w.u64(quotaPages)
        w.u64(effectiveQuotaPages)
        w.u64(usedPages)
        w.list(enclaves) { w, handle in w.u64(handle) }
        w.bool(registered)
    }

    static func decode(_ r: inout WireReader, limits: ProtocolLimits) throws(DecodeError) -> ScopeSummary {
        ScopeSummary(
            podUID: try r.string("scope.podUID", maxBytes: maxScopeKeyBytes),
            containerID: try r.string("scope.containerID", maxBytes: maxScopeKeyBytes),
            namespace: try r.string("scope.namespace", maxBytes: maxScopeNameBytes),
            pod: try r.string("scope.pod", maxBytes: maxScopeNameBytes),
            container: try r.string("scope.container", maxBytes: maxScopeNameBytes), quotaPages: try r.u64("scope.quotaPages"),
            effectiveQuotaPages: try r.u64("scope.effectiveQuotaPages"), usedPages: try r.u64("scope.usedPages"),
            enclaves: try r.list("scope.enclaves", maxCount: limits.maxRangesPerList, minElementBytes: 8) {
                (r: inout WireReader) throws(DecodeError) in try r.u64("scope.enclaves[]")
            },
            registered: try r.bool("scope.registered"))
    }
}

public struct ScopeListReply: Equatable, Sendable {
    public var scopes: [ScopeSummary]
    /// Scopes visible to the caller in total; the next page starts at `offset + scopes.count`.
    public var total: UInt32

    public init(scopes: [ScopeSummary], total: UInt32) {
        self.scopes = scopes
        self.total = total
    }

    func encode(_ w: inout WireWriter) {
        w.list(scopes) { w, scope in scope.encode(&w) }
        w.u32(total)
    }

    static func decode(_ r: inout WireReader, limits: ProtocolLimits) throws(DecodeError) -> ScopeListReply {
        ScopeListReply(
            scopes: try r.list("scopes.list", maxCount: 4_096, minElementBytes: ScopeSummary.minWireSize) {
                (r: inout WireReader) throws(DecodeError) in try ScopeSummary.decode(&r, limits: limits)
            },
            total: try r.u32("scopes.total"))
    }
}

extension ResponseBody {
    /// The replies of SET_SCOPE, DROP_SCOPE and SCOPES.
    static func decodeScopeBody(verb: Verb, _ r: inout WireReader, limits: ProtocolLimits) throws(DecodeError) -> ResponseBody {
        switch verb {
        case .setScope: .setScope(SetScopeReply(enclaves: try r.u32("setScope.enclaves"), usedPages: try r.u64("setScope.usedPages")))
        case .dropScope: .dropScope(DropScopeReply(scopes: try r.u32("dropScope.scopes"), enclaves: try r.u32("dropScope.enclaves")))
        default: .scopes(try ScopeListReply.decode(&r, limits: limits))
        }
    }
}
