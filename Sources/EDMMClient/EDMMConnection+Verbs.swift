import EDMMCore
import EDMMProtocol

/// One typed `async` call per verb. Each is a one-request batch; use `submit` to put several
/// operations in one message.
extension EDMMConnection {
    /// REGISTER: hands edmmd the enclave descriptor (passed with SCM_RIGHTS; the caller keeps
    /// its own copy open).
    public func register(
        descriptor: Int32, base: UInt64, size: UInt64, label: String, preheatPages: UInt64 = 0,
        managed: WireRange = WireRange(offset: 0, length: 0), adopted: [WireRange] = []
    ) async throws(EDMMClientError) -> RegisterReply {
        let request = RegisterRequest(
            base: base, size: size, label: label, preheatPages: preheatPages, managed: managed, adopted: adopted)
        let submission = try await submit([OutgoingRequest(.register(request), descriptor: descriptor)])
        guard let reply = try await submission.replies().first?.get(), case .register(let r) = reply.body else {
            throw .protocolViolation("REGISTER without its reply")
        }
        return r
    }

    public func attach(_ enclave: EnclaveHandle) async throws(EDMMClientError) -> AttachReply {
        guard case .attach(let r) = try await perform(.attach(enclave)) else { throw mismatch(.attach) }
        return r
    }

    @discardableResult
    public func unregister(_ enclave: EnclaveHandle) async throws(EDMMClientError) -> DoneReply {
        try await done(.unregister(enclave))
    }

    public func allocate(_ request: AllocateRequest) async throws(EDMMClientError) -> AllocateReply {
        guard case .allocate(let r) = try await perform(.allocate(request)) else { throw mismatch(.allocate) }
        return r
    }

    /// FREE. Fire-and-forget returns once sent (nil); an error then arrives as an event.
    @discardableResult
    public func free(_ enclave: EnclaveHandle, _ range: WireRange, fireAndForget: Bool = false) async throws(EDMMClientError) -> DoneReply?
    {
        try await maybeDone(.free(RangeRequest(enclave: enclave, range: range)), fireAndForget: fireAndForget)
    }

    @discardableResult
    public func trim(_ enclave: EnclaveHandle, _ range: WireRange) async throws(EDMMClientError) -> DoneReply {
        try await done(.trim(RangeRequest(enclave: enclave, range: range)))
    }

    @discardableResult
    public func trimAccepted(_ enclave: EnclaveHandle, _ range: WireRange) async throws(EDMMClientError) -> DoneReply {
        try await done(.trimAccepted(RangeRequest(enclave: enclave, range: range)))
    }

    @discardableResult
    public func restrict(_ enclave: EnclaveHandle, _ range: WireRange, to permissions: PagePermissions) async throws(EDMMClientError)
        -> DoneReply
    {
        try await done(.restrict(PermissionsRequest(enclave: enclave, range: range, permissions: permissions)))
    }

    @discardableResult
    public func relax(
        _ enclave: EnclaveHandle, _ range: WireRange, to permissions: PagePermissions, fireAndForget: Bool = false
    ) async throws(EDMMClientError) -> DoneReply? {
        try await maybeDone(
            .relax(PermissionsRequest(enclave: enclave, range: range, permissions: permissions)), fireAndForget: fireAndForget)
    }

    @discardableResult
    public func makeTCS(_ enclave: EnclaveHandle, _ range: WireRange) async throws(EDMMClientError) -> DoneReply {
        try await done(.makeTCS(RangeRequest(enclave: enclave, range: range)))
    }

    /// Replies when every earlier request for the enclave is done.
    @discardableResult
    public func sync(_ enclave: EnclaveHandle) async throws(EDMMClientError) -> DoneReply {
        try await done(.sync(enclave))
    }

    public func status() async throws(EDMMClientError) -> StatusReply {
        guard case .status(let r) = try await perform(.status) else { throw mismatch(.status) }
        return r
    }

    /// One page of the enclave list.
    public func enclaves(startAfter: EnclaveHandle = 0, maxCount: UInt16 = 256) async throws(EDMMClientError) -> EnclaveListReply {
        guard case .enclaves(let r) = try await perform(.enclaves(EnclaveListRequest(startAfter: startAfter, maxCount: maxCount))) else {
            throw mismatch(.enclaves)
        }
        return r
    }

    /// Every enclave visible to this client, paging through ENCLAVES.
    public func allEnclaves() async throws(EDMMClientError) -> [EnclaveSummary] {
        var all: [EnclaveSummary] = []
        var after: EnclaveHandle = 0
        repeat {
            let page = try await enclaves(startAfter: after)
            all += page.enclaves
            guard page.nextStartAfter > after else { break }
            after = page.nextStartAfter
        } while true
        return all
    }

    public func stats(_ enclave: EnclaveHandle) async throws(EDMMClientError) -> EnclaveStatsReply {
        guard case .stats(let r) = try await perform(.stats(enclave)) else { throw mismatch(.stats) }
        return r
    }

    /// RECLAIM (admin): `enclave` 0 for all, `targetPages` 0 for the whole pool.
    public func reclaim(enclave: EnclaveHandle = 0, targetPages: UInt64 = 0) async throws(EDMMClientError) -> ReclaimReply {
        guard case .reclaim(let r) = try await perform(.reclaim(ReclaimRequest(enclave: enclave, targetPages: targetPages))) else {
            throw mismatch(.reclaim)
        }
        return r
    }

    /// RELOAD (admin).
    public func reload() async throws(EDMMClientError) -> ReloadReply {
        guard case .reload(let r) = try await perform(.reload) else { throw mismatch(.reload) }
        return r
    }

    /// The whole Prometheus exposition, fetched chunk by chunk with METRICS.
    public func metricsText() async throws(EDMMClientError) -> String {
        var text = ""
        var offset: UInt32 = 0
        while true {
            guard case .metrics(let chunk) = try await perform(.metrics(MetricsRequest(offset: offset))) else { throw mismatch(.metrics) }
            text += chunk.text
            let next = UInt64(chunk.offset) + UInt64(chunk.text.utf8.count)
            guard !chunk.text.isEmpty, next < UInt64(chunk.totalBytes) else { return text }
            offset = UInt32(next)
        }
    }

    private func done(_ request: Request) async throws(EDMMClientError) -> DoneReply {
        guard case .done(let r) = try await perform(request) else { throw mismatch(request.verb) }
        return r
    }

    private func maybeDone(_ request: Request, fireAndForget: Bool) async throws(EDMMClientError) -> DoneReply? {
        guard fireAndForget else { return try await done(request) }
        _ = try await submit([OutgoingRequest(request, fireAndForget: true)])
        return nil
    }

    private func mismatch(_ verb: Verb) -> EDMMClientError { .protocolViolation("\(verb) answered with another verb's reply") }
}
