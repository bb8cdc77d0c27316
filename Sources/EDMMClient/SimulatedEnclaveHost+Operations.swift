import EDMMCore
import EDMMProtocol
import SGXDevice
import SGXSimulator

extension SimulatedEnclaveHost {
    /// Runs a batch of operations with one exit: the enclave does its part before the exit
    /// (EMODPE for RELAX, TCS contents for MAKE_TCS), hands every request over in one message
    /// (several only if the daemon's limits demand it) together with any TRIM_ACCEPTED backlog,
    /// then on return EACCEPTs what the replies call for. Results are in operation order.
    public func perform(_ operations: [HostOperation]) async -> [Result<HostOutcome, EnclaveHostError>] {
        var results = [Result<HostOutcome, EnclaveHostError>?](repeating: nil, count: operations.count)
        var prepared: [(index: Int, request: OutgoingRequest, saved: [(range: PageRange, state: HostPage?)])] = []
        for (index, operation) in operations.enumerated() {
            switch prepare(operation) {
            case .success(let (request, saved)): prepared.append((index, request, saved))
            case .failure(let error): results[index] = .failure(error)
            }
        }
        let backlog = state.withLock { s in
            defer { s.trimAcceptedBacklog = [] }
            return s.trimAcceptedBacklog
        }
        let outgoing = backlog.map { trimAcceptedRequest($0) } + prepared.map(\.request)
        guard !outgoing.isEmpty else { return results.map { $0! } }
        let replies: [Result<Reply?, EDMMClientError>]
        let sentAt: ContinuousClock.Instant
        do {
            let submission = try await send(outgoing)
            sentAt = submission.sentAt
            if !backlog.isEmpty {
                // Nothing the enclave does next depends on these answers: the host takes them as
                // they come (the REMOVE_PAGES behind them waits for a batch window), and `flush()`
                // waits for them.
                backgroundReplies.begin()
                Task {
                    for (range, reply) in zip(backlog, await submission.replies(0..<backlog.count)) { finishTrimAccepted(range, reply) }
                    backgroundReplies.end()
                }
            }
            replies = await submission.replies(backlog.count..<outgoing.count)
        } catch {
            state.withLock { s in
                for p in prepared { s.tracker.restore(p.saved) }
                s.trimAcceptedBacklog = backlog + s.trimAcceptedBacklog
            }
            for p in prepared { results[p.index] = .failure(error) }
            return results.map { $0! }
        }
        for (p, reply) in zip(prepared, replies) {
            if case .success(let r?) = reply { state.withLock { $0.stats.latency.record(r.receivedAt - sentAt) } }
            results[p.index] = complete(operations[p.index], reply, saved: p.saved)
        }
        if !blueprint.deferTrimAccepted {
            do { try await flush() } catch { state.withLock { $0.stats.asyncErrors.append("TRIM_ACCEPTED: \(error)") } }
        }
        return results.map { $0! }
    }

    /// One operation, as a batch of one.
    public func run(_ operation: HostOperation) async throws(EnclaveHostError) -> HostOutcome {
        guard let result = await perform([operation]).first else { throw .client(.protocolViolation("no result")) }
        return try result.get()
    }

    /// ALLOCATE `pages` anywhere; returns the grant.
    @discardableResult
    public func allocate(pages: UInt64, allowGrowth: Bool = false) async throws(EnclaveHostError) -> PageRange {
        guard let granted = try await run(.allocate(pages: pages, allowGrowth: allowGrowth)).granted else {
            throw .client(.protocolViolation("ALLOCATE without a grant"))
        }
        return granted
    }

    /// Sends the TRIM_ACCEPTED backlog now and waits for the pages to be removed (those sent with
    /// earlier batches too).
    public func flush() async throws(EnclaveHostError) {
        await backgroundReplies.wait()
        let backlog = state.withLock { s in
            defer { s.trimAcceptedBacklog = [] }
            return s.trimAcceptedBacklog
        }
        guard !backlog.isEmpty else { return }
        let submission = try await send(backlog.map { trimAcceptedRequest($0) })
        let replies = await submission.replies()
        for (range, reply) in zip(backlog, replies) { finishTrimAccepted(range, reply) }
    }

    /// Flushes the backlog, then SYNC: every earlier request of this enclave is done.
    @discardableResult
    public func sync() async throws(EnclaveHostError) -> DoneReply {
        try await flush()
        do {
            return try await connection.sync(handle)
        } catch {
            throw .client(error)
        }
    }

    /// Waits until every RECLAIM notice received so far has been honoured.
    public func settle() async { await events.settle() }

    /// RECLAIM notices received and not fully honoured yet.
    public var unhandledNotices: Int { events.unhandledNotices }

    // MARK: Before the exit

    private func prepare(
        _ operation: HostOperation
    ) -> Result<(OutgoingRequest, [(range: PageRange, state: HostPage?)]), EnclaveHostError> {
        let h = handle
        switch operation {
        case .allocate(let pages, let growth):
            guard pages > 0, pages <= UInt64.max >> Page.shift else {
                return .failure(.notHeld(operation: "allocate", offset: 0, state: "\(pages) pages asked"))
            }
            let request = AllocateRequest(enclave: h, length: pages << Page.shift, permissions: .rw, allowGrowth: growth)
            return .success((OutgoingRequest(.allocate(request)), []))
        case .allocateAt(let range):
            let request = AllocateRequest(enclave: h, offset: range.byteOffset, length: range.byteLength, permissions: .rw)
            return .success((OutgoingRequest(.allocate(request)), []))
        case .free(let range):
            return track("free", range, { t throws(CommitTracker.NotHeld) in try t.free(range) }) {
                OutgoingRequest(.free(RangeRequest(enclave: h, range: WireRange(range))), fireAndForget: blueprint.fireAndForget)
            }
        case .trim(let range):
            return track("trim", range, { t throws(CommitTracker.NotHeld) in try t.trim(range) }) {
                OutgoingRequest(.trim(RangeRequest(enclave: h, range: WireRange(range))))
            }
        case .restrict(let range, let permissions):
            return track("restrict", range, { t throws(CommitTracker.NotHeld) in try t.restrict(range, to: permissions) }) {
                OutgoingRequest(.restrict(PermissionsRequest(enclave: h, range: WireRange(range), permissions: permissions)))
            }
        case .relax(let range, let permissions):
            let result = track("relax", range, { t throws(CommitTracker.NotHeld) in try t.relax(range, to: permissions) }) {
                OutgoingRequest(
                    .relax(PermissionsRequest(enclave: h, range: WireRange(range), permissions: permissions)),
                    fireAndForget: blueprint.fireAndForget)
            }
            guard case .success(let (_, saved)) = result else { return result }
            // The enclave extends its own permissions before telling anyone.
            for page in range.first..<range.end {
                let outcome = cpu.emodpe(address(page), flags: SecInfoFlags(permissions: permissions))
                if outcome != .success {
                    state.withLock { $0.tracker.restore(saved) }
                    return .failure(.instructionFailed(leaf: "EMODPE", offset: page << Page.shift, outcome: outcome))
                }
            }
            return result
        case .makeTCS(let page):
            let range = PageRange(first: page, count: 1)
            // The TCS is written while the page is still private PT_REG memory.
            let saved = state.withLock { $0.tracker.runs(in: range) }
            guard case .inUse(let p)? = saved.first?.state, p.isSuperset(of: .rw) else {
                return .failure(.notHeld(operation: "make a TCS of", offset: range.byteOffset, state: saved.first?.state?.description ?? "hole"))
            }
            if let failure = writeTCS(at: page) { return .failure(failure) }
            return track("make a TCS of", range, { t throws(CommitTracker.NotHeld) in try t.makeTCS(range) }) {
                OutgoingRequest(.makeTCS(RangeRequest(enclave: h, range: WireRange(range))))
            }
        }
    }

    /// Applies a tracker transition, remembering the runs it changed so a refusal can undo it.
    private func track(
        _ operation: String, _ range: PageRange, _ transition: (inout CommitTracker) throws(CommitTracker.NotHeld) -> Void,
        _ request: () -> OutgoingRequest
    ) -> Result<(OutgoingRequest, [(range: PageRange, state: HostPage?)]), EnclaveHostError> {
        let outcome: Result<[(range: PageRange, state: HostPage?)], CommitTracker.NotHeld> = state.withLock { s in
            let saved = s.tracker.runs(in: range)
            do throws(CommitTracker.NotHeld) {
                try transition(&s.tracker)
                return .success(saved)
            } catch {
                return .failure(error)
            }
        }
        switch outcome {
        case .success(let saved): return .success((request(), saved))
        case .failure(let e): return .failure(.notHeld(operation: operation, offset: e.offset, state: e.state))
        }
    }

    /// A valid, inactive TCS with one SSA frame (what a runtime's thread setup writes).
    private func writeTCS(at page: UInt64) -> EnclaveHostError? {
        let base = address(page)
        var words = [UInt64](repeating: 0, count: 512)
        words[3] = 1 << 32  // CSSA 0, NSSA 1
        words[8] = .max  // FSLIMIT, GSLIMIT
        for (index, word) in words.enumerated() {
            if case .failure(let e) = cpu.write(base + UInt64(index * 8), word) {
                return .instructionFailed(leaf: "write", offset: page << Page.shift, outcome: .exception(e))
            }
        }
        return nil
    }

    // MARK: The exit

    /// Sends requests: one OCALL per message, as the enclave hands them to its host.
    func send(_ requests: [OutgoingRequest]) async throws(EnclaveHostError) -> Submission {
        let submission: Submission
        do {
            submission = try await connection.submit(requests)
        } catch {
            throw .client(error)
        }
        for _ in 0..<submission.messages { cpu.ocall {} }
        state.withLock { s in
            s.stats.messages += UInt64(submission.messages)
            for request in requests { s.stats.countSent(request.request.verb) }
        }
        return submission
    }

    func trimAcceptedRequest(_ range: PageRange) -> OutgoingRequest {
        OutgoingRequest(.trimAccepted(RangeRequest(enclave: handle, range: WireRange(range))))
    }

    // MARK: After the reply

    private func complete(
        _ operation: HostOperation, _ reply: Result<Reply?, EDMMClientError>, saved: [(range: PageRange, state: HostPage?)]
    ) -> Result<HostOutcome, EnclaveHostError> {
        let body: ResponseBody?
        switch reply {
        case .failure(let error):
            state.withLock { $0.tracker.restore(saved) }
            return .failure(.client(error))
        case .success(let r):
            body = r?.body
        }
        if case .done(let done)? = body { state.withLock { $0.stats.noteDone(done) } }
        do throws(EnclaveHostError) {
            switch operation {
            case .allocate(let pages, _):
                return .success(try takeAllocation(body, asked: .count(pages)))
            case .allocateAt(let range):
                return .success(try takeAllocation(body, asked: .range(range)))
            case .free, .relax:
                return .success(.done(try doneReply(body, allowMissing: true)))
            case .trim(let range):
                let done = try doneReply(body)
                try accept(range, flags: [.pageType(.trim), .modified], leaf: "EACCEPT(TRIM|MODIFIED)")
                state.withLock { s in
                    s.tracker.trimAccepted(range)
                    s.trimAcceptedBacklog.append(range)
                }
                return .success(.done(done))
            case .restrict(let range, let permissions):
                let done = try doneReply(body)
                try accept(range, flags: [.pageType(.reg), .pr, SecInfoFlags(permissions: permissions)], leaf: "EACCEPT(REG|PR)")
                state.withLock { $0.tracker.restricted(range) }
                return .success(.done(done))
            case .makeTCS(let page):
                let range = PageRange(first: page, count: 1)
                let done = try doneReply(body)
                try accept(range, flags: [.pageType(.tcs), .modified], leaf: "EACCEPT(TCS|MODIFIED)")
                state.withLock { $0.tracker.becameTCS(range) }
                return .success(.done(done))
            }
        } catch {
            return .failure(error)
        }
    }

    private func doneReply(_ body: ResponseBody?, allowMissing: Bool = false) throws(EnclaveHostError) -> DoneReply? {
        switch body {
        case .done(let done)?: return done
        case nil where allowMissing: return nil
        default: throw .client(.protocolViolation("expected a done reply"))
        }
    }

    private func doneReply(_ body: ResponseBody?) throws(EnclaveHostError) -> DoneReply {
        guard case .done(let done)? = body else { throw .client(.protocolViolation("expected a done reply")) }
        return done
    }

    private func takeAllocation(_ body: ResponseBody?, asked: AskedPages) throws(EnclaveHostError) -> HostOutcome {
        guard case .allocate(let reply)? = body else { throw .client(.protocolViolation("ALLOCATE answered without a grant")) }
        let granted = try pageRanges([reply.granted])[0]
        let fresh = try pageRanges(reply.fresh)
        let reused = try pageRanges(reply.reused)
        try takeGrant(granted: granted, fresh: fresh, reused: reused, asked: asked)
        let freshPages = fresh.reduce(0) { $0 + $1.count }
        return .allocated(granted, freshPages: freshPages, reusedPages: granted.count - freshPages)
    }

    /// Checks a grant against the enclave's own record, then EACCEPTs its fresh pages (each one
    /// faults, and the kernel EAUGs it). Reused pages are already accepted and are not touched.
    func takeGrant(granted: PageRange, fresh: [PageRange], reused: [PageRange], asked: AskedPages?) throws(EnclaveHostError) {
        let verdict: HostSafetyViolation? = state.withLock { s in
            do throws(HostSafetyViolation) {
                try s.tracker.admitGrant(granted: granted, fresh: fresh, reused: reused, asked: asked, permissions: .rw)
                return nil
            } catch {
                s.stats.violations.append(error)
                return error
            }
        }
        if let verdict { throw .refused(verdict) }
        for range in fresh { try accept(range, flags: [.pageType(.reg), .pending, .r, .w], leaf: "EACCEPT(REG|PENDING|RW)") }
        let freshPages = fresh.reduce(0) { $0 + $1.count }
        state.withLock { s in
            s.stats.freshPagesAccepted += freshPages
            s.stats.reusedPages += granted.count - freshPages
        }
    }

    func accept(_ range: PageRange, flags: SecInfoFlags, leaf: String) throws(EnclaveHostError) {
        for page in range.first..<range.end {
            let outcome = cpu.eaccept(address(page), flags: flags)
            guard outcome == .success else { throw .instructionFailed(leaf: leaf, offset: page << Page.shift, outcome: outcome) }
        }
    }

    func finishTrimAccepted(_ range: PageRange, _ reply: Result<Reply?, EDMMClientError>) {
        state.withLock { s in
            switch reply {
            case .success(let r):
                if case .done(let done)? = r?.body { s.stats.noteDone(done) }
                s.tracker.removed(range)
            case .failure(let error):
                s.stats.asyncErrors.append("TRIM_ACCEPTED \(range): \(error)")
            }
        }
    }
}
