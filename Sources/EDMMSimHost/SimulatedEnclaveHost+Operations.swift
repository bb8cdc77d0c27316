import EDMMClient
import EDMMCore
import EDMMProtocol
import Glibc
import SGXDevice
import SGXSimulator

extension SimulatedEnclaveHost {
    /// Runs a batch of operations with one exit: the enclave does its part before the exit
    /// (EMODPE for RELAX, TCS contents for MAKE_TCS), hands every request over in one message
    /// (several only if the daemon's limits demand it) together with any TRIM_ACCEPTED backlog,
    /// then on return EACCEPTs what the replies call for. Results are in operation order.
    ///
    /// When the connection is lost with requests unanswered and the host reconnects (see
    /// `ReconnectPolicy`), they are resolved by this rule: after a restart edmmd announced
    /// (SHUTDOWN_NOTICE with `restarting`), or when edmmd answered shutting-down, none of them
    /// was applied and all are sent again; otherwise (edmmd died) only those that are harmless
    /// to apply twice are sent again (RESTRICT, RELAX, TRIM_ACCEPTED), and the others fail with
    /// `interrupted`. If edmmd had to register the enclave again, none is sent again.
    ///
    /// A request edmmd answers with SGX_EPC_PAGE_CONFLICT (an SGX instruction of the enclave's own
    /// held a page when edmmd's EMODPR or EMODT reached it) is asked again for the pages it did
    /// not reach, as long as it makes progress; the pages it did reach are taken as done either way.
    public func perform(_ operations: [HostOperation]) async -> [Result<HostOutcome, EnclaveHostError>] {
        var results = await performOnce(operations)
        for index in results.indices {
            var asked = operations[index]
            var withoutProgress = 0
            while withoutProgress < Self.conflictRetries, case .failure(let error) = results[index],
                let rest = Self.remainder(of: asked, afterConflict: error)
            {
                withoutProgress = rest == asked ? withoutProgress + 1 : 0
                state.withLock { $0.stats.conflictRetries += 1 }
                asked = rest
                results[index] = await performOnce([rest])[0]
            }
        }
        return results
    }

    /// How many times in a row a request meeting SGX_EPC_PAGE_CONFLICT on its first page is asked
    /// again (a retry that got pages done does not count).
    static let conflictRetries = 8

    /// The pages of `operation` an ioctl failing with SGX_EPC_PAGE_CONFLICT did not reach.
    static func remainder(of operation: HostOperation, afterConflict error: EnclaveHostError) -> HostOperation? {
        guard case .client(let client) = error, case .kernel(_, _, let countBytes, let result)? = client.wireError?.detail,
            result == SGXErrorCode.epcPageConflict
        else { return nil }
        let done = countBytes >> Page.shift
        switch operation {
        case .trim(let range) where done < range.count: return .trim(PageRange(first: range.first + done, end: range.end))
        case .restrict(let range, let permissions) where done < range.count:
            return .restrict(PageRange(first: range.first + done, end: range.end), to: permissions)
        case .makeTCS where done == 0: return operation
        default: return nil
        }
    }

    private func performOnce(_ operations: [HostOperation]) async -> [Result<HostOutcome, EnclaveHostError>] {
        var results = [Result<HostOutcome, EnclaveHostError>?](repeating: nil, count: operations.count)
        var prepared: [(index: Int, request: PreparedRequest, saved: [(range: PageRange, state: HostPage?)])] = []
        for (index, operation) in operations.enumerated() {
            switch prepare(operation) {
            case .success(let (request, saved)): prepared.append((index, request, saved))
            case .failure(let error): results[index] = .failure(error)
            }
        }
        let registration = state.withLock { $0.registrations }
        let (answers, _) = await exchange(prepared.map(\.request), backlog: takeBacklog())
        for (p, answer) in zip(prepared, answers) {
            let operation = operations[p.index]
            switch answer {
            case .reply(let reply, let sentAt):
                if case .success(let r?) = reply { state.withLock { $0.stats.latency.record(r.receivedAt - sentAt) } }
                results[p.index] = complete(operation, reply, saved: p.saved, registration: registration)
            case .failed(let error):
                state.withLock { $0.tracker.restore(p.saved) }
                results[p.index] = .failure(error)
            case .interrupted(let reregistered):
                if let outcome = settleInterrupted(operation, saved: p.saved, reregistered: reregistered) {
                    results[p.index] = .success(outcome)
                } else {
                    results[p.index] = .failure(.interrupted(operation: "\(operation.verb)"))
                }
            }
        }
        if !blueprint.deferTrimAccepted {
            do { try await flush() } catch { state.withLock { $0.stats.asyncErrors.append("TRIM_ACCEPTED: \(error)") } }
        }
        return results.map { $0! }
    }

    /// A request ready to go, built for whatever handle the enclave has when it is sent.
    struct PreparedRequest {
        var make: (EnclaveHandle) -> OutgoingRequest
        /// Applying it twice does no harm, so it may be sent again when edmmd died first.
        var repeatable: Bool
    }

    enum Answer {
        case reply(Result<Reply?, EDMMClientError>, sentAt: ContinuousClock.Instant)
        case failed(EnclaveHostError)
        /// Lost with the connection and not sent again; `reregistered`: edmmd had lost the enclave,
        /// which registered again (see `settleInterrupted`).
        case interrupted(reregistered: Bool)
    }

    /// Sends the TRIM_ACCEPTED backlog and the requests, and collects an answer for each request
    /// by the rule of `perform`, reconnecting as often as needed (at most three times). Backlog
    /// ranges that could not be sent are put back; the error that kept them is returned.
    func exchange(_ requests: [PreparedRequest], backlog: [PageRange]) async -> ([Answer], unsent: EnclaveHostError?) {
        var answers = [Answer?](repeating: nil, count: requests.count)
        var pendingBacklog = backlog
        var pending = Array(requests.indices)
        var unsent: EnclaveHostError?
        var attempt = 0
        while !pending.isEmpty || !pendingBacklog.isEmpty {
            let (connection, handle, generation) = link.withLock { ($0.connection, $0.handle, $0.generation) }
            let outgoing = pendingBacklog.map { trimAcceptedRequest($0, handle: handle) } + pending.map { requests[$0].make(handle) }
            var replies: [Result<Reply?, EDMMClientError>]
            var sentAt = ContinuousClock.now
            do {
                let submission = try await send(outgoing, on: connection)
                sentAt = submission.sentAt
                replies = await submission.replies()
            } catch {
                guard case .client(let clientError) = error else {
                    // Not sent at all: the backlog waits for the next exchange.
                    restoreBacklog(pendingBacklog)
                    for i in pending { answers[i] = .failed(error) }
                    return (answers.map { $0! }, error)
                }
                replies = Array(repeating: .failure(clientError), count: outgoing.count)
            }
            // Lost: the connection went away first. Refused: edmmd was shutting down (not applied).
            var lostBacklog: [PageRange] = []
            var lost: [(index: Int, refused: Bool)] = []
            for (range, reply) in zip(pendingBacklog, replies) {
                if retryKind(reply, attempt: attempt) != nil {
                    lostBacklog.append(range)
                } else {
                    finishTrimAccepted(range, reply, retried: attempt > 0)
                }
            }
            for (i, reply) in zip(pending, replies.dropFirst(pendingBacklog.count)) {
                if let refused = retryKind(reply, attempt: attempt) {
                    lost.append((i, refused))
                } else {
                    answers[i] = .reply(reply, sentAt: sentAt)
                }
            }
            guard !lostBacklog.isEmpty || !lost.isEmpty else { break }
            attempt += 1
            pendingBacklog = []
            pending = []
            switch await recover(after: generation) {
            case .reattached(let announced):
                pendingBacklog = lostBacklog
                for (i, refused) in lost {
                    if announced || refused || requests[i].repeatable { pending.append(i) } else { answers[i] = .interrupted(reregistered: false) }
                }
            case .reregistered:
                for (i, refused) in lost { if refused { pending.append(i) } else { answers[i] = .interrupted(reregistered: true) } }
            case .failed(let error):
                restoreBacklog(lostBacklog)
                if !lostBacklog.isEmpty { unsent = error }
                for (i, _) in lost { answers[i] = .failed(error) }
            }
        }
        return (answers.map { $0! }, unsent)
    }

    /// nil when `reply` is final; else whether edmmd refused it for shutting down (true) or the
    /// connection was lost with it unanswered (false). Only hosts that reconnect retry, thrice.
    private func retryKind(_ reply: Result<Reply?, EDMMClientError>, attempt: Int) -> Bool? {
        guard reconnectPolicy != nil, attempt < 3, case .failure(let error) = reply else { return nil }
        if error.wireError?.code == .shuttingDown { return true }
        return Self.isConnectionLoss(error) ? false : nil
    }

    private func takeBacklog() -> [PageRange] {
        state.withLock { s in
            defer { s.trimAcceptedBacklog = [] }
            return s.trimAcceptedBacklog
        }
    }

    func restoreBacklog(_ ranges: [PageRange]) {
        guard !ranges.isEmpty else { return }
        state.withLock { $0.trimAcceptedBacklog = ranges + $0.trimAcceptedBacklog }
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

    /// Sends the TRIM_ACCEPTED backlog now and waits for the pages to be removed.
    public func flush() async throws(EnclaveHostError) {
        let backlog = takeBacklog()
        guard !backlog.isEmpty else { return }
        if let unsent = await exchange([], backlog: backlog).unsent { throw unsent }
    }

    /// Flushes the backlog, then SYNC: every earlier request of this enclave is done. SYNC is
    /// sent again after a reconnection.
    @discardableResult
    public func sync() async throws(EnclaveHostError) -> DoneReply {
        try await flush()
        let request = PreparedRequest(make: { OutgoingRequest(.sync($0)) }, repeatable: true)
        switch await exchange([request], backlog: []).0.first {
        case .reply(let reply, _)?:
            switch reply {
            case .success(let r):
                guard case .done(let done)? = r?.body else { throw .client(.protocolViolation("SYNC answered without a done reply")) }
                return done
            case .failure(let error): throw .client(error)
            }
        case .failed(let error)?: throw error
        case .interrupted?, nil: throw .interrupted(operation: "SYNC")
        }
    }

    /// Waits until every RECLAIM notice received so far has been honoured.
    public func settle() async { await events.settle() }

    /// RECLAIM notices received and not fully honoured yet.
    public var unhandledNotices: Int { events.unhandledNotices }

    // MARK: Before the exit

    private func prepare(
        _ operation: HostOperation
    ) -> Result<(PreparedRequest, [(range: PageRange, state: HostPage?)]), EnclaveHostError> {
        let fireAndForget = blueprint.fireAndForget
        switch operation {
        case .allocate(let pages, let growth):
            guard pages > 0, pages <= UInt64.max >> Page.shift else {
                return .failure(.notHeld(operation: "allocate", offset: 0, state: "\(pages) pages asked"))
            }
            let make = { (h: EnclaveHandle) in
                OutgoingRequest(.allocate(AllocateRequest(enclave: h, length: pages << Page.shift, permissions: .rw, allowGrowth: growth)))
            }
            return .success((PreparedRequest(make: make, repeatable: false), []))
        case .allocateAt(let range):
            let make = { (h: EnclaveHandle) in
                OutgoingRequest(.allocate(AllocateRequest(enclave: h, offset: range.byteOffset, length: range.byteLength, permissions: .rw)))
            }
            return .success((PreparedRequest(make: make, repeatable: false), []))
        case .free(let range):
            return track("free", range, { t throws(CommitTracker.NotHeld) in try t.free(range) }, repeatable: false) { h in
                OutgoingRequest(.free(RangeRequest(enclave: h, range: WireRange(range))), fireAndForget: fireAndForget)
            }
        case .trim(let range):
            return track("trim", range, { t throws(CommitTracker.NotHeld) in try t.trim(range) }, repeatable: false) { h in
                OutgoingRequest(.trim(RangeRequest(enclave: h, range: WireRange(range))))
            }
        case .restrict(let range, let permissions):
            // EMODPR to the same permissions again succeeds and leaves the page as one EMODPR would.
            return track("restrict", range, { t throws(CommitTracker.NotHeld) in try t.restrict(range, to: permissions) }, repeatable: true) { h in
                OutgoingRequest(.restrict(PermissionsRequest(enclave: h, range: WireRange(range), permissions: permissions)))
            }
        case .relax(let range, let permissions):
            let result = track("relax", range, { t throws(CommitTracker.NotHeld) in try t.relax(range, to: permissions) }, repeatable: true) { h in
                OutgoingRequest(
                    .relax(PermissionsRequest(enclave: h, range: WireRange(range), permissions: permissions)), fireAndForget: fireAndForget)
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
            return track("make a TCS of", range, { t throws(CommitTracker.NotHeld) in try t.makeTCS(range) }, repeatable: false) { h in
                OutgoingRequest(.makeTCS(RangeRequest(enclave: h, range: WireRange(range))))
            }
        }
    }

    /// Applies a tracker transition, remembering the runs it changed so a refusal can undo it.
    private func track(
        _ operation: String, _ range: PageRange, _ transition: (inout CommitTracker) throws(CommitTracker.NotHeld) -> Void,
        repeatable: Bool, _ make: @escaping (EnclaveHandle) -> OutgoingRequest
    ) -> Result<(PreparedRequest, [(range: PageRange, state: HostPage?)]), EnclaveHostError> {
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
        case .success(let saved): return .success((PreparedRequest(make: make, repeatable: repeatable), saved))
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

    /// Sends requests on the current connection: one OCALL per message, as the enclave hands them
    /// to its host.
    func send(_ requests: [OutgoingRequest]) async throws(EnclaveHostError) -> Submission {
        try await send(requests, on: connection)
    }

    func send(_ requests: [OutgoingRequest], on connection: EDMMConnection) async throws(EnclaveHostError) -> Submission {
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

    func trimAcceptedRequest(_ range: PageRange, handle: EnclaveHandle) -> OutgoingRequest {
        OutgoingRequest(.trimAccepted(RangeRequest(enclave: handle, range: WireRange(range))))
    }

    // MARK: After the reply

    private func complete(
        _ operation: HostOperation, _ reply: Result<Reply?, EDMMClientError>, saved: [(range: PageRange, state: HostPage?)],
        registration: Int
    ) -> Result<HostOutcome, EnclaveHostError> {
        let body: ResponseBody?
        switch reply {
        case .failure(let error):
            state.withLock { $0.tracker.restore(saved) }
            settleCompletedPart(of: operation, error)
            return .failure(.client(error))
        case .success(let r):
            body = r?.body
        }
        if case .done(let done)? = body { state.withLock { $0.stats.noteDone(done) } }
        do throws(EnclaveHostError) {
            switch operation {
            case .allocate(let pages, _):
                return .success(try takeAllocation(body, asked: .count(pages), registration: registration))
            case .allocateAt(let range):
                return .success(try takeAllocation(body, asked: .range(range), registration: registration))
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

    /// An ioctl that failed after `count` bytes of this request changed those pages, and edmmd's
    /// ledger has them done: the enclave takes them as done too (with the EACCEPT their change
    /// calls for), so that its record, the ledger and the EPCM stay equal; the rest of the range
    /// is back where it was.
    private func settleCompletedPart(of operation: HostOperation, _ error: EDMMClientError) {
        guard case .kernel(_, _, let countBytes, _)? = error.wireError?.detail, countBytes >= Page.size else { return }
        let done = countBytes >> Page.shift
        do throws(EnclaveHostError) {
            switch operation {
            case .trim(let range):
                let part = PageRange(first: range.first, count: min(done, range.count))
                state.withLock { s in try? s.tracker.trim(part) }
                try accept(part, flags: [.pageType(.trim), .modified], leaf: "EACCEPT(TRIM|MODIFIED)")
                state.withLock { s in
                    s.tracker.trimAccepted(part)
                    s.trimAcceptedBacklog.append(part)
                }
            case .restrict(let range, let permissions):
                let part = PageRange(first: range.first, count: min(done, range.count))
                state.withLock { s in try? s.tracker.restrict(part, to: permissions) }
                try accept(part, flags: [.pageType(.reg), .pr, SecInfoFlags(permissions: permissions)], leaf: "EACCEPT(REG|PR)")
                state.withLock { $0.tracker.restricted(part) }
            default:
                break
            }
        } catch {
            note("the part of \(operation) edmmd completed before its ioctl failed: \(error)")
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

    private func takeAllocation(_ body: ResponseBody?, asked: AskedPages, registration: Int) throws(EnclaveHostError) -> HostOutcome {
        guard case .allocate(let reply)? = body else { throw .client(.protocolViolation("ALLOCATE answered without a grant")) }
        let granted = try pageRanges([reply.granted])[0]
        let fresh = try pageRanges(reply.fresh)
        let reused = try pageRanges(reply.reused)
        try takeGrant(granted: granted, fresh: fresh, reused: reused, asked: asked, registration: registration)
        let freshPages = fresh.reduce(0) { $0 + $1.count }
        return .allocated(granted, freshPages: freshPages, reusedPages: granted.count - freshPages)
    }

    /// Checks a grant against the enclave's own record, then EACCEPTs its fresh pages (each one
    /// faults, and the kernel EAUGs it). Reused pages are already accepted and are not touched.
    /// All of it happens under the state lock, so that a re-registration, which takes the record
    /// under the same lock, sees the whole grant accepted or none of it; a grant answered under an
    /// earlier `registration` (its edmmd has died since) is void and refused as interrupted.
    func takeGrant(
        granted: PageRange, fresh: [PageRange], reused: [PageRange], asked: AskedPages?, registration: Int? = nil
    ) throws(EnclaveHostError) {
        let outcome: Result<Void, EnclaveHostError> = state.withLock { s in
            if let registration, registration != s.registrations { return .failure(.interrupted(operation: "ALLOCATE")) }
            do throws(HostSafetyViolation) {
                try s.tracker.admitGrant(granted: granted, fresh: fresh, reused: reused, asked: asked, permissions: .rw)
            } catch {
                s.stats.violations.append(error)
                return .failure(.refused(error))
            }
            if blueprint.prefaultFreshPages { prefault(fresh) }
            do throws(EnclaveHostError) {
                for range in fresh { try accept(range, flags: [.pageType(.reg), .pending, .r, .w], leaf: "EACCEPT(REG|PENDING|RW)") }
            } catch {
                return .failure(error)
            }
            let freshPages = fresh.reduce(0) { $0 + $1.count }
            s.stats.freshPagesAccepted += freshPages
            s.stats.reusedPages += granted.count - freshPages
            return .success(())
        }
        try outcome.get()
    }

    /// The host's moment between edmmd's reply and the return into the enclave. The kernel EAUGs
    /// a hole on any fault in the enclave's VMA, whatever the CPU mode (sgx_vma_fault →
    /// sgx_encl_eaug_page), and installs the PTE in this process: the EACCEPT that follows finds
    /// it and takes no fault, so no AEX. A read from outside the enclave gets abort-page
    /// semantics (all ones); a page the kernel cannot EAUG now (EPC exhausted) is simply left to
    /// fault in the enclave. A host on hardware must catch that SIGBUS; here the outcome says it.
    /// Modelled by the simulator; not validated on SGX hardware.
    func prefault(_ ranges: [PageRange]) {
        for range in ranges {
            for page in range.first..<range.end { _ = enclave.untrustedAccess(address: address(page), write: false) }
        }
    }

    func accept(_ range: PageRange, flags: SecInfoFlags, leaf: String) throws(EnclaveHostError) {
        for page in range.first..<range.end {
            let outcome = eaccept(address(page), flags: flags)
            guard outcome == .success else { throw .instructionFailed(leaf: leaf, offset: page << Page.shift, outcome: outcome) }
        }
    }

    /// How many times an EACCEPT is resumed after a not-present #PF before its fault is final.
    public static let eacceptResumes = 16

    /// EACCEPT, resumed after a not-present #PF on its page: the kernel could not EAUG (or load)
    /// the page at that moment (SIGBUS: no EPC page it could take at once, or another thread won
    /// the race to add it), which reaches the runtime through the vDSO as vector 14 without the
    /// SGX bit. Like a runtime's exception handler, the host resumes the enclave (ERESUME) and the
    /// EACCEPT runs again; a fault that persists is returned.
    func eaccept(_ address: UInt64, flags: SecInfoFlags) -> InstructionOutcome {
        var outcome = cpu.eaccept(address, flags: flags)
        var resumes = 0
        while resumes < Self.eacceptResumes, case .exception(let fault) = outcome, fault.isNotPresentPageFault,
            fault.address == address
        {
            resumes += 1
            cpu.resumeAfterException()
            sched_yield()
            outcome = cpu.eaccept(address, flags: flags)
        }
        if resumes > 0 { eacceptsResumed.add(UInt64(resumes), ordering: .relaxed) }
        return outcome
    }

    /// `retried`: sent again after a reconnection; then invalid-page-state means the first one
    /// was applied (edmmd no longer has the pages as trimmed), so the pages are gone.
    func finishTrimAccepted(_ range: PageRange, _ reply: Result<Reply?, EDMMClientError>, retried: Bool = false) {
        state.withLock { s in
            switch reply {
            case .success(let r):
                if case .done(let done)? = r?.body { s.stats.noteDone(done) }
                s.tracker.removed(range)
            case .failure(let error) where retried && error.wireError?.code == .invalidPageState:
                s.tracker.removed(range)
            case .failure(let error):
                s.stats.asyncErrors.append("TRIM_ACCEPTED \(range): \(error)")
            }
        }
    }
}
