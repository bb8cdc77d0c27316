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
        switch operation.request {
        case .hello(let hello):
            self.hello(hello, id: operation.id, offersMachine: operation.flags.contains(.machine), descriptors: descriptors)
        case .register(let request): register(request, target: target, descriptors: descriptors)
        case .attach(let handle): attach(handle, target: target)
        case .status: answer(id: operation.id, verbCode: verb.rawValue, .success(.status(core.statusReply())))
        case .enclaves(let query):
            answer(id: operation.id, verbCode: verb.rawValue, .success(.enclaves(core.enclaveList(query, viewer: peer, limits: limits.protocolLimits))))
        case .reclaim(let request): reclaim(request, id: operation.id)
        case .reload: reload(id: operation.id)
        case .metrics(let request): answer(id: operation.id, verbCode: verb.rawValue, metrics(request))
        case .unregister, .allocate, .free, .trim, .trimAccepted, .restrict, .relax, .makeTCS, .sync, .stats:
            // The enclave verbs: each names its enclave and runs on that enclave's queue.
            guard let handle = operation.request.enclave else {
                return answer(id: operation.id, verbCode: verb.rawValue, .failure(WireError(.internalError, "\(verb) names no enclave")))
            }
            route(handle, EnclaveCall(target: target, request: operation.request), viewOnly: verb == .stats)
        }
    }

    /// Sends an enclave-bound request to its queue, if this connection may use the enclave: it
    /// registered or attached it (STATS only needs to be allowed to see it).
    func route(_ handle: EnclaveHandle, _ call: EnclaveCall, viewOnly: Bool) {
        if let enclave = enclaves[handle] { return submitInline(enclave, call) }
        let fail = { (error: WireError) in self.answer(id: call.target.id, verbCode: call.target.verb.rawValue, .failure(error)) }
        guard let enclave = core.registry.lookup(handle) else {
            return fail(WireError(.unknownEnclave, "no registered enclave has handle \(handle)"))
        }
        let adminGroup = core.settings.adminGroupID
        // A viewer that does not use the enclave does not wait for its queue: a flush there may
        // wait on the enclave's simulated EPC lock, which its own client can hold.
        if viewOnly, peer.canView(owner: enclave.owner.uid, adminGroup: adminGroup) { return enclave.submitLater(call) }
        if enclave.owner.uid != peer.uid && !peer.isAdmin(adminGroup: adminGroup) {
            return fail(WireError(.notOwner, "enclave \(handle) belongs to uid \(enclave.owner.uid)"))
        }
        fail(WireError(.notOwner, "this connection has not registered or attached enclave \(handle); ATTACH it first"))
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

    func settle(_ completions: [Completion]) {
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
