import EDMMCore

/// The wire form of every reply body (docs/protocol.md, "Replies").
extension ResponseBody {
    func encode(_ w: inout WireWriter) {
        switch self {
        case .hello(let h):
            w.u16(h.version)
            w.u8(h.mode.rawValue)
            w.string(h.daemonVersion)
            w.u32(h.daemonPID)
            let l = h.limits
            for v in [
                l.maxMessageBytes, l.maxOperationsPerMessage, l.maxInFlightRequests, l.maxEnclavesPerConnection,
                l.maxDescriptorsPerMessage, l.maxRangesPerList, l.maxLabelBytes, l.maxStringBytes,
            ] {
                w.u32(UInt32(clamping: v))
            }
            w.bool(h.carriesMachineDescriptor)
        case .register(let r):
            w.u64(r.enclave)
            w.u8(r.device.rawValue)
            w.u64(r.quotaPages)
            w.list(r.preheat) { w, range in range.encode(&w) }
        case .attach(let a):
            w.u64(a.base)
            w.u64(a.size)
            w.string(a.label)
            w.u8(a.device.rawValue)
            a.managed.encode(&w)
        case .allocate(let a):
            a.granted.encode(&w)
            w.u8(a.permissions.rawValue)
            w.list(a.reused) { w, range in range.encode(&w) }
            w.list(a.fresh) { w, range in range.encode(&w) }
        case .done(let d):
            w.u64(d.pages)
            w.u32(d.ioctls)
            w.u32(d.batchedRequests)
        case .status(let s):
            w.string(s.daemonVersion)
            w.u8(s.mode.rawValue)
            w.string(s.modeReason)
            w.u32(s.daemonPID)
            w.u64(s.uptimeMicros)
            w.u32(s.enclaves)
            w.u32(s.connections)
            w.u64(s.epcTotalBytes)
            w.u64(s.epcCommittedBytes)
            w.u64(s.epcResidentBytes)
            w.bool(s.underPressure)
            w.bool(s.batching)
            w.u64(s.requestsTotal)
            w.f64(s.requestsPerSecond)
            w.u64(s.ioctlsTotal)
            w.list(s.counters) { w, c in c.encode(&w) }
        case .enclaves(let e):
            w.list(e.enclaves) { w, s in s.encode(&w) }
            w.u64(e.nextStartAfter)
            w.u32(e.total)
        case .stats(let s):
            s.summary.encode(&w)
            s.managed.encode(&w)
            w.list(s.counters) { w, c in c.encode(&w) }
        case .reclaim(let r):
            w.u64(r.scheduledPages)
            w.u32(r.enclaves)
        case .reload(let r):
            w.string(r.summary)
        case .metrics(let m):
            w.u32(m.totalBytes)
            w.u32(m.offset)
            w.string(m.text)
        case .setScope(let s):
            w.u32(s.enclaves)
            w.u64(s.usedPages)
        case .dropScope(let d):
            w.u32(d.scopes)
            w.u32(d.enclaves)
        case .scopes(let s):
            s.encode(&w)
        }
    }

    static func decode(verb: Verb, _ r: inout WireReader, limits: ProtocolLimits) throws(DecodeError) -> ResponseBody {
        let body: ResponseBody
        switch verb {
        case .hello:
            let version = try r.u16("hello.version")
            let mode = try decodeDevice(&r, "hello.mode")
            let daemonVersion = try r.string("hello.daemonVersion", maxBytes: 256)
            let pid = try r.u32("hello.daemonPID")
            var l = ProtocolLimits()
            l.maxMessageBytes = Int(try r.u32("hello.maxMessageBytes"))
            l.maxOperationsPerMessage = Int(try r.u32("hello.maxOperationsPerMessage"))
            l.maxInFlightRequests = Int(try r.u32("hello.maxInFlightRequests"))
            l.maxEnclavesPerConnection = Int(try r.u32("hello.maxEnclavesPerConnection"))
            l.maxDescriptorsPerMessage = Int(try r.u32("hello.maxDescriptorsPerMessage"))
            l.maxRangesPerList = Int(try r.u32("hello.maxRangesPerList"))
            l.maxLabelBytes = Int(try r.u32("hello.maxLabelBytes"))
            l.maxStringBytes = Int(try r.u32("hello.maxStringBytes"))
            body = .hello(
                HelloReply(
                    version: version, mode: mode, daemonVersion: daemonVersion, daemonPID: pid, limits: l,
                    carriesMachineDescriptor: try r.bool("hello.carriesMachineDescriptor")))
        case .register:
            body = .register(
                RegisterReply(
                    enclave: try r.u64("register.enclave"), device: try decodeDevice(&r, "register.device"),
                    quotaPages: try r.u64("register.quotaPages"), preheat: try decodeRanges(&r, "register.preheat", limits)))
        case .attach:
            body = .attach(
                AttachReply(
                    base: try r.u64("attach.base"), size: try r.u64("attach.size"),
                    label: try r.string("attach.label", maxBytes: limits.maxLabelBytes),
                    device: try decodeDevice(&r, "attach.device"), managed: try WireRange.decode(&r, "attach.managed")))
        case .allocate:
            body = .allocate(
                AllocateReply(
                    granted: try WireRange.decode(&r, "allocate.granted"),
                    permissions: try PagePermissions.decode(&r, "allocate.permissions"),
                    reused: try decodeRanges(&r, "allocate.reused", limits), fresh: try decodeRanges(&r, "allocate.fresh", limits)))
        case .free, .trim, .trimAccepted, .restrict, .relax, .makeTCS, .sync, .unregister:
            body = .done(
                DoneReply(
                    pages: try r.u64("done.pages"), ioctls: try r.u32("done.ioctls"), batchedRequests: try r.u32("done.batchedRequests")))
        case .status:
            body = .status(
                StatusReply(
                    daemonVersion: try r.string("status.daemonVersion", maxBytes: 256), mode: try decodeDevice(&r, "status.mode"),
                    modeReason: try r.string("status.modeReason", maxBytes: 1024), daemonPID: try r.u32("status.daemonPID"),
                    uptimeMicros: try r.u64("status.uptime"), enclaves: try r.u32("status.enclaves"),
                    connections: try r.u32("status.connections"), epcTotalBytes: try r.u64("status.epcTotal"),
                    epcCommittedBytes: try r.u64("status.epcCommitted"), epcResidentBytes: try r.u64("status.epcResident"),
                    underPressure: try r.bool("status.underPressure"), batching: try r.bool("status.batching"),
                    requestsTotal: try r.u64("status.requestsTotal"), requestsPerSecond: try r.f64("status.requestsPerSecond"),
                    ioctlsTotal: try r.u64("status.ioctlsTotal"), counters: try decodeCounters(&r, "status.counters")))
        case .enclaves:
            body = .enclaves(
                EnclaveListReply(
                    enclaves: try r.list("enclaves.list", maxCount: 4_096, minElementBytes: EnclaveSummary.minWireSize) {
                        (r: inout WireReader) throws(DecodeError) in try EnclaveSummary.decode(&r, limits: limits)
                    },
                    nextStartAfter: try r.u64("enclaves.nextStartAfter"), total: try r.u32("enclaves.total")))
        case .stats:
            body = .stats(
                EnclaveStatsReply(
                    summary: try EnclaveSummary.decode(&r, limits: limits), managed: try WireRange.decode(&r, "stats.managed"),
                    counters: try decodeCounters(&r, "stats.counters")))
        case .reclaim:
            body = .reclaim(ReclaimReply(scheduledPages: try r.u64("reclaim.scheduledPages"), enclaves: try r.u32("reclaim.enclaves")))
        case .reload:
            body = .reload(ReloadReply(summary: try r.string("reload.summary", maxBytes: limits.maxStringBytes)))
        case .metrics:
            body = .metrics(
                MetricsReply(
                    totalBytes: try r.u32("metrics.totalBytes"), offset: try r.u32("metrics.offset"),
                    text: try r.string("metrics.text", maxBytes: limits.maxStringBytes)))
        case .setScope, .dropScope, .scopes:
            body = try decodeScopeBody(verb: verb, &r, limits: limits)
        }
        try r.expectEnd("\(verb) reply")
        return body
    }

    private static func decodeRanges(_ r: inout WireReader, _ field: String, _ limits: ProtocolLimits) throws(DecodeError) -> [WireRange] {
        try r.list(field, maxCount: limits.maxRangesPerList, minElementBytes: WireRange.wireSize) {
            (r: inout WireReader) throws(DecodeError) in try WireRange.decode(&r, "\(field)[]")
        }
    }

    private static func decodeCounters(_ r: inout WireReader, _ field: String) throws(DecodeError) -> [WireCounter] {
        try r.list(field, maxCount: 4_096, minElementBytes: 10) { (r: inout WireReader) throws(DecodeError) in try WireCounter.decode(&r) }
    }
}

func decodeDevice(_ r: inout WireReader, _ field: String) throws(DecodeError) -> WireDeviceKind {
    let at = r.position
    guard let kind = WireDeviceKind(rawValue: try r.u8(field)) else { throw DecodeError("\(field): unknown device kind", at: at) }
    return kind
}
