import Dispatch
import EDMMCore
import EDMMProtocol
import Glibc

/// Admission and routing on the session's queue: the connection-level checks (HELLO first, the
/// in-flight limit, duplicate ids, shutdown), the verbs the session answers itself, and routing
/// of every enclave verb to its enclave's queue.
extension SessionState {
    func accept(_ operation: RequestOperation, descriptors: MessageDescriptors) {
        let verb = operation.request.verb
        guard phase != .closed else { return }
        if core.isShuttingDown && verb.isNewWork {
            return reject(id: operation.id, verbCode: verb.rawValue, WireError(.shuttingDown, "edmmd is shutting down"))
        }
        if phase == .awaitingHello, verb != .hello {
            return reject(id: operation.id, verbCode: verb.rawValue, WireError(.helloRequired, "send HELLO first"))
        }
        guard inFlight[operation.id] == nil else {
            return reject(
                id: operation.id, verbCode: verb.rawValue,
                WireError(.duplicateRequestID, "request id \(operation.id) is already in flight on this connection"))
        }
        let maxInFlight = limits.protocolLimits.maxInFlightRequests
        guard inFlight.count < maxInFlight else {
            return reject(
                id: operation.id, verbCode: verb.rawValue,
                WireError(
                    .tooManyInFlight, "\(inFlight.count) requests are in flight, the limit",
                    detail: .limit(limit: UInt64(maxInFlight), actual: UInt64(inFlight.count + 1))))
        }
        inFlight[operation.id] = .now
        let target = ReplyTarget(
            session: session, id: operation.id, verb: verb, silentOnSuccess: operation.flags.contains(.noReply))
        do throws(WireError) {
            try dispatch(operation, target: target, descriptors: descriptors)
        } catch {
            answer(id: operation.id, verbCode: verb.rawValue, .failure(error))
        }
    }

    /// Runs an accepted request: answers the verbs of the connection itself, hands REGISTER and
    /// ATTACH on to their enclave, and routes every enclave verb to its enclave's queue. What it
    /// throws is the request's answer.
    private func dispatch(_ operation: RequestOperation, target: ReplyTarget, descriptors: MessageDescriptors) throws(WireError) {
        let (id, verb) = (operation.id, operation.request.verb.rawValue)
        switch operation.request {
        case .hello(let hello): try self.hello(hello, id: id, offersMachine: operation.flags.contains(.machine), descriptors: descriptors)
        case .register(let request):
            try register(request, options: operation.flags.intersection(.registration), target: target, descriptors: descriptors)
        case .attach(let handle): try attach(handle, target: target)
        case .status: answer(id: id, verbCode: verb, .success(.status(core.statusReply(viewer: peer))))
        case .enclaves(let query):
            answer(id: id, verbCode: verb, .success(.enclaves(core.enclaveList(query, viewer: peer, limits: limits.protocolLimits))))
        case .reclaim(let request): try reclaim(request, id: id)
        case .reload: answer(id: id, verbCode: verb, .success(try reload()))
        case .metrics(let request): answer(id: id, verbCode: verb, .success(try metrics(request)))
        case .setScope(let request): answer(id: id, verbCode: verb, .success(try setScope(request)))
        case .dropScope(let request): answer(id: id, verbCode: verb, .success(try dropScope(request)))
        case .scopes(let request): answer(id: id, verbCode: verb, .success(try scopes(request)))
        case .unregister, .allocate, .free, .trim, .trimAccepted, .restrict, .relax, .makeTCS, .sync, .stats:
            // The enclave verbs: each names its enclave and runs on that enclave's queue.
            guard let handle = operation.request.enclave else { throw WireError(.internalError, "\(target.verb) names no enclave") }
            try route(handle, EnclaveCall(target: target, request: operation.request), viewOnly: target.verb == .stats)
        }
    }

    /// Sends an enclave-bound request to its queue, if this connection may use the enclave: it
    /// registered or attached it (STATS only needs to be allowed to see it).
    func route(_ handle: EnclaveHandle, _ call: EnclaveCall, viewOnly: Bool) throws(WireError) {
        if let enclave = enclaves[handle] { return submitInline(enclave, call) }
        guard let enclave = core.registry.lookup(handle) else {
            throw WireError(.unknownEnclave, "no registered enclave has handle \(handle)")
        }
        let adminGroup = core.settings.adminGroupID
        // A viewer that does not use the enclave does not wait for its queue: a flush there may
        // wait on the enclave's simulated EPC lock, which its own client can hold.
        if viewOnly, peer.canView(owner: enclave.owner, adminGroup: adminGroup) { return enclave.submitLater(call) }
        if !peer.canView(owner: enclave.owner, adminGroup: adminGroup) {
            throw WireError(.notOwner, "enclave \(handle) belongs to \(enclave.owner.ownerDescription)")
        }
        throw WireError(.notOwner, "this connection has not registered or attached enclave \(handle); ATTACH it first")
    }

    // MARK: Answers from enclaves

    /// Runs a request on its enclave's queue from this thread (`EnclaveContext.submit` is
    /// synchronous). Answers the enclave gives meanwhile are for a session whose queue this
    /// thread holds, so `deliver` settles them at once: the reply leaves with the read handler's
    /// flush instead of two queue items later (measured: docs/benchmarks.md).
    func submitInline(_ enclave: EnclaveContext, _ call: EnclaveCall) {
        session.inlineDeliveryThread.store(UInt(pthread_self()), ordering: .relaxed)
        defer { session.inlineDeliveryThread.store(0, ordering: .relaxed) }
        enclave.submit(call)
    }

    func settle(_ completions: some Sequence<Completion>) {
        for completion in completions {
            if completion.reservedSlot { pendingAttachments -= 1 }
            if let enclave = completion.attaching, case .success = completion.outcome {
                if phase == .closed {
                    enclave.detach(session)
                } else {
                    enclaves[enclave.handle] = enclave
                }
            }
            answer(id: completion.id, verbCode: completion.verb.rawValue, completion.outcome, silentOnSuccess: completion.silentOnSuccess)
        }
    }
}

extension Verb {
    /// Verbs a draining daemon refuses. Requests that give memory back (TRIM, TRIM_ACCEPTED,
    /// FREE, MAKE_TCS, ...) or only look are still served: a trim is never failed for a policy
    /// reason, shutdown included.
    var isNewWork: Bool {
        switch self {
        case .hello, .register, .attach, .allocate, .reclaim, .reload: true
        default: false
        }
    }
}
