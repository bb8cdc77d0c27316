import EDMMCore
import EDMMProtocol

// Bounds the decoders promise for every decoded value (docs/protocol.md). The fixed ones are
// restated here, not read from the codec, so that a codec change that loosens one shows up.
let maxClientNameBytes = 256
let maxDaemonVersionBytes = 256
let maxReasonBytes = 1024
let maxErrorMessageBytes = 1024
let maxPageStateBytes = 64
let maxCounterNameBytes = 128
let maxCountersOrSummaries = 4096

func checkInvariants(_ op: RequestOperation, limits: ProtocolLimits) {
    require(RequestFlags.known.isSuperset(of: op.flags), "unknown flag bits 0x\(String(op.flags.rawValue, radix: 16)) accepted")
    if op.flags.contains(.noReply) {
        require(op.request.verb == .free || op.request.verb == .relax, "no-reply accepted on \(op.request.verb)")
    }
    if op.flags.contains(.machine) {
        require(op.request.verb == .hello, "the machine flag accepted on \(op.request.verb)")
    }
    switch op.request {
    case .hello(let hello):
        checkString(hello.clientName, max: maxClientNameBytes, "hello.clientName")
    case .register(let register):
        checkString(register.label, max: limits.maxLabelBytes, "register.label")
        checkCount(register.adopted, max: limits.maxRangesPerList, "register.adopted")
        for range in [register.managed] + register.adopted { checkPageRangeConversion(range, elrangeSize: register.size) }
    case .allocate(let allocate):
        checkPermissions(allocate.permissions, "allocate.permissions")
        if allocate.offset != WireRange.anywhere { checkPageRangeConversion(WireRange(offset: allocate.offset, length: allocate.length)) }
    case .free(let request), .trim(let request), .trimAccepted(let request), .makeTCS(let request):
        checkPageRangeConversion(request.range)
    case .restrict(let change), .relax(let change):
        checkPermissions(change.permissions, "\(op.request.verb).permissions")
        checkPageRangeConversion(change.range)
    case .setScope(let scope):
        checkString(scope.podUID, max: maxScopeKeyBytes, "setScope.podUID")
        checkString(scope.containerID, max: maxScopeKeyBytes, "setScope.containerID")
        for name in [scope.namespace, scope.pod, scope.container] { checkString(name, max: maxScopeNameBytes, "setScope names") }
    case .dropScope(let scope):
        checkString(scope.podUID, max: maxScopeKeyBytes, "dropScope.podUID")
        checkString(scope.containerID, max: maxScopeKeyBytes, "dropScope.containerID")
    case .attach, .unregister, .sync, .status, .enclaves, .stats, .reclaim, .reload, .metrics, .scopes:
        break
    }
}

/// The daemon turns every range a client sends into a `PageRange` through
/// `WireRange.pageRange(elrangeSize:)`: it must answer not-aligned or out-of-range, never trap
/// (PageRange's initializer has a precondition), and a range it accepts covers exactly the bytes sent.
func checkPageRangeConversion(_ range: WireRange, elrangeSize: UInt64? = nil) {
    let sizes = [elrangeSize ?? 1 << 36, .max, range.offset &+ range.length]
    for size in sizes {
        switch range.pageRange(elrangeSize: size) {
        case .success(let pages):
            require(
                pages.byteOffset == range.offset && pages.byteLength == range.length && range.offset + range.length <= size,
                "\(range) in an ELRANGE of \(size) bytes became \(pages)")
        case .failure(let error):
            require(error.code == .notAligned || error.code == .outOfRange, "\(range) rejected with \(error.code)")
        }
    }
}

func checkInvariants(_ op: ResponseOperation, limits: ProtocolLimits) {
    switch op.outcome {
    case .failure(let error):
        checkInvariants(error)
    case .success(let body):
        guard let verb = op.verb else { violation("a successful reply with unknown verb \(op.verbCode) decoded") }
        require(body.answers(verb), "a \(verb) reply decoded with the body \(body)")
        checkInvariants(body, limits: limits)
    }
}

func checkInvariants(_ body: ResponseBody, limits: ProtocolLimits) {
    switch body {
    case .hello(let hello):
        checkString(hello.daemonVersion, max: maxDaemonVersionBytes, "hello.daemonVersion")
    case .register(let register):
        checkCount(register.preheat, max: limits.maxRangesPerList, "register.preheat")
    case .attach(let attach):
        checkString(attach.label, max: limits.maxLabelBytes, "attach.label")
    case .allocate(let allocate):
        checkPermissions(allocate.permissions, "allocate.permissions")
        checkCount(allocate.reused, max: limits.maxRangesPerList, "allocate.reused")
        checkCount(allocate.fresh, max: limits.maxRangesPerList, "allocate.fresh")
    case .status(let status):
        checkString(status.daemonVersion, max: maxDaemonVersionBytes, "status.daemonVersion")
        checkString(status.modeReason, max: maxReasonBytes, "status.modeReason")
        checkCounters(status.counters, "status.counters")
    case .enclaves(let list):
        checkCount(list.enclaves, max: maxCountersOrSummaries, "enclaves.list")
        for summary in list.enclaves { checkInvariants(summary, limits: limits) }
    case .stats(let stats):
        checkInvariants(stats.summary, limits: limits)
        checkCounters(stats.counters, "stats.counters")
    case .reload(let reload):
        checkString(reload.summary, max: limits.maxStringBytes, "reload.summary")
    case .metrics(let metrics):
        checkString(metrics.text, max: limits.maxStringBytes, "metrics.text")
    case .scopes(let scopes):
        checkCount(scopes.scopes, max: 4_096, "scopes.list")
        for scope in scopes.scopes { checkCount(scope.enclaves, max: limits.maxRangesPerList, "scope.enclaves") }
    case .done, .reclaim, .setScope, .dropScope:
        break
    }
}

func checkInvariants(_ op: PushOperation, limits: ProtocolLimits) {
    switch op.push {
    case .reclaim(let notice):
        checkCount(notice.ranges, max: limits.maxRangesPerList, "reclaim.ranges")
    case .shutdown(let notice):
        checkString(notice.message, max: maxErrorMessageBytes, "shutdown.message")
    }
}

func checkInvariants(_ error: WireError) {
    checkString(error.message, max: maxErrorMessageBytes, "error.message")
    if case .page(_, let state) = error.detail { checkString(state, max: maxPageStateBytes, "error.page.state") }
}

func checkInvariants(_ summary: EnclaveSummary, limits: ProtocolLimits) {
    checkString(summary.label, max: limits.maxLabelBytes, "summary.label")
}

func checkCounters(_ counters: [WireCounter], _ field: String) {
    checkCount(counters, max: maxCountersOrSummaries, field)
    for counter in counters { checkString(counter.name, max: maxCounterNameBytes, "\(field)[].name") }
}

func checkString(_ s: String, max: Int, _ field: String) {
    require(s.utf8.count <= max, "\(field) of \(s.utf8.count) bytes accepted, limit \(max)")
}

func checkCount<T>(_ items: [T], max: Int, _ field: String) {
    require(items.count <= max, "\(field) of \(items.count) elements accepted, limit \(max)")
}

func checkPermissions(_ permissions: PagePermissions, _ field: String) {
    require(permissions.rawValue & ~PagePermissions.rwx.rawValue == 0, "\(field) 0x\(String(permissions.rawValue, radix: 16)) accepted")
}
