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
                    if announced || refused || requests[i].repeatable {
                        pending.append(i)
                    } else {
                        answers[i] = .interrupted(reregistered: false)
                    }
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
}
