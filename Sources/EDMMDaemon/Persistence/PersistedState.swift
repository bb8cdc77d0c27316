import EDMMCore
import EDMMKubernetes
import EDMMProtocol

/// What the FD store's state memfd holds: every registered enclave's record and counters, the
/// highest handle handed out (handles are never reused, not even across restarts), and whether
/// the daemon that wrote it stopped cleanly (after draining every queue) or may have died.
struct PersistedState: Equatable {
    struct Enclave: Equatable {
        var record: EnclaveRecord
        var counters: EnclaveCounters
    }

    var lastHandle: EnclaveHandle
    var cleanShutdown: Bool
    var enclaves: [Enclave]
    /// The Kubernetes scopes SET_SCOPE registered: the NRI hook runs only when a container is
    /// created, so a restart must not forget them.
    var scopes: [ContainerScope: ScopeRegistration] = [:]

    static let magic: UInt64 = 0x4554_5344_4D4D_4445  // "EDMMDSTE" in byte order
    /// 2 added the scopes; a version 1 state (none) is still read.
    static let version: UInt16 = 2

    func encoded() -> [UInt8] {
        var w = WireWriter(capacity: 64 + enclaves.count * 512)
        w.u64(Self.magic)
        w.u16(Self.version)
        w.u64(lastHandle)
        w.bool(cleanShutdown)
        w.list(enclaves) { w, enclave in
            let record = enclave.record.encoded()
            w.u32(UInt32(record.count))
            w.raw(record)
            enclave.counters.encode(into: &w)
        }
        w.list(scopes.keys.sorted()) { w, scope in
            let registration = scopes[scope]!
            for text in [scope.podUID, scope.containerID ?? "", registration.namespace, registration.pod, registration.container] {
                w.string(text)
            }
            w.u64(registration.quotaPages ?? .max)
        }
        return w.bytes
    }

    init(lastHandle: EnclaveHandle, cleanShutdown: Bool, enclaves: [Enclave], scopes: [ContainerScope: ScopeRegistration] = [:]) {
        self.lastHandle = lastHandle
        self.cleanShutdown = cleanShutdown
        self.enclaves = enclaves
        self.scopes = scopes
    }

    init(decoding bytes: [UInt8]) throws(DecodeError) {
        var r = WireReader(bytes)
        guard try r.u64("magic") == Self.magic else { throw DecodeError("not an edmmd state", at: 0) }
        let versionAt = r.position
        let version = try r.u16("version")
        guard (1...Self.version).contains(version) else { throw DecodeError("unsupported state version", at: versionAt) }
        lastHandle = try r.u64("last handle")
        cleanShutdown = try r.bool("clean shutdown")
        enclaves = try r.list("enclaves", maxCount: 1 << 20, minElementBytes: 4) { (r: inout WireReader) throws(DecodeError) in
            let at = r.position
            let length = Int(try r.u32("record length"))
            let start = r.position
            try r.skip(length, "record")
            let record: EnclaveRecord
            do throws(DecodeError) {
                record = try EnclaveRecord(decoding: Array(bytes[start..<start + length]))
            } catch {
                throw DecodeError("enclave record: \(error.reason)", at: at)
            }
            return Enclave(record: record, counters: try EnclaveCounters(decoding: &r))
        }
        if version >= 2 { scopes = try Self.decodeScopes(&r) }
        try r.expectEnd("state")
    }

    private static func decodeScopes(_ r: inout WireReader) throws(DecodeError) -> [ContainerScope: ScopeRegistration] {
        let entries = try r.list("scopes", maxCount: 1 << 20, minElementBytes: 18) {
            (r: inout WireReader) throws(DecodeError) -> (ContainerScope, ScopeRegistration) in
            let at = r.position
            let pod = try r.string("scope.podUID", maxBytes: maxScopeKeyBytes)
            let container = try r.string("scope.containerID", maxBytes: maxScopeKeyBytes)
            guard let podUID = ContainerScope.canonicalPodUID(pod) else { throw DecodeError("bad pod UID", at: at) }
            let registration = ScopeRegistration(
                namespace: try r.string("scope.namespace", maxBytes: maxScopeNameBytes),
                pod: try r.string("scope.pod", maxBytes: maxScopeNameBytes),
                container: try r.string("scope.container", maxBytes: maxScopeNameBytes), quotaPages: nil)
            let quota = try r.u64("scope.quotaPages")
            var withQuota = registration
            withQuota.quotaPages = quota == .max ? nil : quota
            return (ContainerScope(podUID: podUID, containerID: container.isEmpty ? nil : container), withQuota)
        }
        return Dictionary(entries, uniquingKeysWith: { _, last in last })
    }
}

extension EnclaveCounters {
    func encode(into w: inout WireWriter) {
        w.list(requestsOK) { w, value in w.u64(value) }
        w.list(requestsFailed) { w, value in w.u64(value) }
        for kind in [WireIoctl.modifyTypes, .restrictPermissions, .removePages] {
            w.u64(ioctlCalls[kind])
            w.u64(ioctlPages[kind])
        }
        for value in [retriesEBUSY, retriesEAGAIN, retriesEINTR, ioctlErrors, reclaimedPages, flushes, largestFlush] {
            w.u64(value)
        }
    }

    init(decoding r: inout WireReader) throws(DecodeError) {
        self.init()
        let slots = requestsOK.count
        // A state written by a build with fewer (or more) verbs still restores what both know.
        let ok = try r.list("requests ok", maxCount: 1024, minElementBytes: 8) { (r: inout WireReader) throws(DecodeError) in
            try r.u64("count")
        }
        let failed = try r.list("requests failed", maxCount: 1024, minElementBytes: 8) { (r: inout WireReader) throws(DecodeError) in
            try r.u64("count")
        }
        for i in 0..<min(slots, ok.count) { requestsOK[i] = ok[i] }
        for i in 0..<min(slots, failed.count) { requestsFailed[i] = failed[i] }
        for kind in [WireIoctl.modifyTypes, .restrictPermissions, .removePages] {
            ioctlCalls[kind] = try r.u64("ioctl calls")
            ioctlPages[kind] = try r.u64("ioctl pages")
        }
        retriesEBUSY = try r.u64("EBUSY retries")
        retriesEAGAIN = try r.u64("EAGAIN retries")
        retriesEINTR = try r.u64("EINTR retries")
        ioctlErrors = try r.u64("ioctl errors")
        reclaimedPages = try r.u64("reclaimed pages")
        flushes = try r.u64("flushes")
        largestFlush = try r.u64("largest flush")
    }
}
