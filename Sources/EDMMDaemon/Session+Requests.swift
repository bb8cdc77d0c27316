import Dispatch
import EDMMCore
import EDMMProtocol
import EDMMVersion
import Glibc
import SGXSimulator

/// Request handling on the session's queue: the connection-level checks (HELLO, in-flight limit,
/// duplicate ids, enclave ownership), the verbs answered here, and routing to enclave queues.
extension Session {
    func accept(_ operation: RequestOperation, descriptors: MessageDescriptors) {
        dispatchPrecondition(condition: .onQueue(queue))
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
            session: self, id: operation.id, verb: verb, silentOnSuccess: operation.flags.contains(.noReply))
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
        case .setScope, .dropScope, .scopes:
            answer(id: operation.id, verbCode: verb.rawValue, .failure(WireError(.unknownVerb, "\(verb) is not served yet")))
        case .stats(let handle): route(handle, EnclaveCall(target: target, request: operation.request), viewOnly: true)
        case .unregister(let handle), .sync(let handle):
            route(handle, EnclaveCall(target: target, request: operation.request), viewOnly: false)
        case .allocate(let request): route(request.enclave, EnclaveCall(target: target, request: operation.request), viewOnly: false)
        case .free(let request), .trim(let request), .trimAccepted(let request), .makeTCS(let request):
            route(request.enclave, EnclaveCall(target: target, request: operation.request), viewOnly: false)
        case .restrict(let request), .relax(let request):
            route(request.enclave, EnclaveCall(target: target, request: operation.request), viewOnly: false)
        }
    }

    /// Sends an enclave-bound request to its queue, if this connection may use the enclave: it
    /// registered or attached it (STATS only needs to be allowed to see it).
    private func route(_ handle: EnclaveHandle, _ call: EnclaveCall, viewOnly: Bool) {
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

    // MARK: HELLO

    private func hello(_ hello: HelloRequest, id: UInt64, offersMachine: Bool, descriptors: MessageDescriptors) {
        let verb = Verb.hello.rawValue
        guard phase == .awaitingHello else {
            return answer(id: id, verbCode: verb, .failure(WireError(.invalidArgument, "HELLO was already exchanged on this connection")))
        }
        let lowest = max(hello.minVersion, ProtocolVersion.supported.lowerBound)
        let highest = min(hello.maxVersion, ProtocolVersion.supported.upperBound)
        guard lowest <= highest else {
            return answer(
                id: id, verbCode: verb,
                .failure(
                    WireError(
                        .unsupportedVersion,
                        "client speaks versions \(hello.minVersion)...\(hello.maxVersion), edmmd \(ProtocolVersion.supported.lowerBound)...\(ProtocolVersion.supported.upperBound)")))
        }
        var machine = core.backend.machine
        if offersMachine {
            switch offeredMachine(descriptors) {
            case .failure(let error): return answer(id: id, verbCode: verb, .failure(error))
            case .success(let offered): machine = offered
            }
        }
        phase = .ready
        helloDone()
        // The reply borrows the machine's descriptor: keep the machine alive until it is sent.
        handedMachine = machine
        let reply = HelloReply(
            version: highest, mode: core.backend.mode, daemonVersion: EDMMDVersion.string, daemonPID: UInt32(bitPattern: getpid()),
            limits: limits.protocolLimits, carriesMachineDescriptor: machine != nil)
        logger.debug("hello", metadata: ["client": "\(hello.clientName)", "peer": "\(peer)"])
        answer(id: id, verbCode: verb, .success(.hello(reply)), descriptor: machine?.fd)
    }

    /// The simulated EPC a HELLO with the machine flag carried (descriptor 0), once the daemon
    /// uses it: its own, or its predecessor's, taken over (see `SimulatedEPC.adopt`).
    private func offeredMachine(_ descriptors: MessageDescriptors) -> Result<SimulatedMachine, WireError> {
        guard let epc = core.backend.epc else {
            return .failure(WireError(.invalidArgument, "edmmd runs on the kernel SGX device; it has no simulated EPC to take over"))
        }
        guard !descriptors.truncated, let fd = descriptors.claim(0) else {
            return .failure(WireError(.badDescriptor, "HELLO with the machine flag must carry the simulated EPC as descriptor 0 (and at most \(limits.protocolLimits.maxDescriptorsPerMessage))"))
        }
        let before = epc.machine
        let result = epc.adopt(fd: fd)
        if case .success(let machine) = result, machine !== before {
            core.fdStore?.replaceMachine(machine.fd)
            logger.notice(
                "took over the simulated EPC of a previous edmmd, offered by a client",
                metadata: ["machine": "\(machine.uuidString)", "replaced": "\(before.uuidString)", "peer": "\(peer)"])
        }
        return result
    }

    // MARK: REGISTER and ATTACH

    private var enclaveSlotsLeft: Int { limits.protocolLimits.maxEnclavesPerConnection - enclaves.count - pendingAttachments }

    private func tooManyEnclaves() -> WireError {
        let limit = limits.protocolLimits.maxEnclavesPerConnection
        return WireError(
            .tooManyEnclaves, "this connection already uses \(enclaves.count + pendingAttachments) enclaves, the limit",
            detail: .limit(limit: UInt64(limit), actual: UInt64(enclaves.count + pendingAttachments + 1)))
    }

    private func register(_ request: RegisterRequest, target: ReplyTarget, descriptors: MessageDescriptors) {
        let fail = { (error: WireError) in self.answer(id: target.id, verbCode: target.verb.rawValue, .failure(error)) }
        let index = Int(request.descriptorIndex)
        if descriptors.truncated {
            return fail(
                WireError(
                    .badDescriptor,
                    "the message carried more than \(limits.protocolLimits.maxDescriptorsPerMessage) descriptors; all were closed",
                    detail: .limit(limit: UInt64(limits.protocolLimits.maxDescriptorsPerMessage), actual: UInt64(descriptors.count + 1))))
        }
        if descriptors.wasClaimed(index) {
            return fail(WireError(.badDescriptor, "descriptor \(index) of this message was already used by another REGISTER"))
        }
        guard let fd = descriptors.claim(index) else {
            return fail(WireError(.badDescriptor, "no descriptor at index \(index): the message carried \(descriptors.count)"))
        }
        guard enclaveSlotsLeft > 0 else { return fail(tooManyEnclaves()) }
        let settings = core.settings
        let registration: ValidatedRegistration
        switch ValidatedRegistration.validate(request, maxPreheatPages: settings.maxPreheatPages) {
        case .failure(let error): return fail(error)
        case .success(let valid): registration = valid
        }
        let device: OpenedDevice
        switch OpenedDevice.open(fd, backend: core.backend) {
        case .failure(let error): return fail(error)
        case .success(let opened): device = opened
        }
        if device.ownsReceivedDescriptor { descriptors.keep(index) }
        if let simulated = device.simulated, simulated.base != registration.base || simulated.size != registration.size {
            simulated.close()
            return fail(
                WireError(
                    .invalidArgument,
                    "ELRANGE [0x\(String(registration.base, radix: 16)), +0x\(String(registration.size, radix: 16))) does not match the simulated enclave's [0x\(String(simulated.base, radix: 16)), +0x\(String(simulated.size, radix: 16)))"))
        }
        let enclave = EnclaveContext(
            handle: core.registry.newHandle(), label: registration.label, owner: peer, base: registration.base,
            size: registration.size, managed: registration.managed, device: device, core: core)
        if let identity = EnclaveIdentity(device) {
            switch core.registry.claim(identity, for: enclave.handle, owner: peer.uid, registering: enclave) {
            case .claimed: break
            case .unchecked(let error): core.noteUncheckedRegistration(error)
            case .taken(let existing, let owner):
                enclave.close(reason: "a second REGISTER of enclave \(existing)") {}
                return fail(WireError.alreadyRegistered(existing, owner: owner, asker: peer))
            }
        }
        pendingAttachments += 1
        enclave.activate(registration, target: target)
    }

    private func attach(_ handle: EnclaveHandle, target: ReplyTarget) {
        let fail = { (error: WireError) in self.answer(id: target.id, verbCode: target.verb.rawValue, .failure(error)) }
        if let enclave = enclaves[handle] {
            let reply = AttachReply(
                base: enclave.base, size: enclave.size, label: enclave.label, device: enclave.deviceKind,
                managed: WireRange(enclave.managed))
            return answer(id: target.id, verbCode: target.verb.rawValue, .success(.attach(reply)))
        }
        guard let enclave = core.registry.lookupIncludingRegistering(handle) else {
            return fail(WireError(.unknownEnclave, "no registered enclave has handle \(handle)"))
        }
        guard enclave.owner.uid == peer.uid || peer.isRoot else {
            return fail(WireError(.notOwner, "enclave \(handle) belongs to uid \(enclave.owner.uid); only that uid (or root) may attach it"))
        }
        guard enclaveSlotsLeft > 0 else { return fail(tooManyEnclaves()) }
        pendingAttachments += 1
        enclave.attach(target)
    }

    // MARK: Answers from enclaves (any queue)

    /// Runs a request on its enclave's queue from this thread (`EnclaveContext.submit` is
    /// synchronous). Answers the enclave gives meanwhile are for a session whose queue this
    /// thread holds, so `deliver` settles them at once: the reply leaves with the read handler's
    /// flush instead of two queue items later (measured: docs/benchmarks.md).
    private func submitInline(_ enclave: EnclaveContext, _ call: EnclaveCall) {
        inlineDeliveryThread.store(UInt(pthread_self()), ordering: .relaxed)
        defer { inlineDeliveryThread.store(0, ordering: .relaxed) }
        enclave.submit(call)
    }

    /// Answers of requests an enclave completed, in the order given.
    func deliver(_ completions: [Completion]) {
        // Only the thread that holds this session's queue inside `submitInline` stores its own id.
        // Answers an enclave handed over earlier and still on their way come first: replies of
        // one enclave leave in request order (docs/protocol.md).
        if inlineDeliveryThread.load(ordering: .relaxed) == UInt(pthread_self()), deliveriesInTransit.load(ordering: .acquiring) == 0 {
            settle(completions)
        } else {
            deliveriesInTransit.add(1, ordering: .releasing)
            queue.async {
                self.settle(completions)
                self.deliveriesInTransit.subtract(1, ordering: .releasing)
            }
        }
    }

    private func settle(_ completions: [Completion]) {
        dispatchPrecondition(condition: .onQueue(queue))
        for completion in completions {
            if completion.reservedSlot { pendingAttachments -= 1 }
            if let enclave = completion.attaching, case .success = completion.outcome {
                if phase == .closed {
                    enclave.detach(self)
                } else {
                    enclaves[enclave.handle] = enclave
                }
            }
            answer(id: completion.id, verbCode: completion.verb.rawValue, completion.outcome, silentOnSuccess: completion.silentOnSuccess)
        }
    }

    /// The enclave was unregistered: this connection no longer uses it.
    func forget(_ handle: EnclaveHandle) {
        queue.async { _ = self.enclaves.removeValue(forKey: handle) }
    }

    /// A daemon-initiated notice (RECLAIM_NOTICE).
    func push(_ push: Push) {
        queue.async { self.pushOnQueue(push) }
    }

    // MARK: Admin verbs

    private func reclaim(_ request: ReclaimRequest, id: UInt64) {
        let verb = Verb.reclaim.rawValue
        guard peer.isAdmin(adminGroup: core.settings.adminGroupID) else {
            return answer(id: id, verbCode: verb, .failure(WireError(.notAdmin, "RECLAIM needs root or the admin group")))
        }
        var target: EnclaveContext?
        if request.enclave != 0 {
            guard let enclave = core.registry.lookup(request.enclave) else {
                return answer(id: id, verbCode: verb, .failure(WireError(.unknownEnclave, "no registered enclave has handle \(request.enclave)")))
            }
            target = enclave
        }
        core.reclaim(only: target, targetPages: request.targetPages) { pages, enclaves in
            self.queue.async {
                self.answer(id: id, verbCode: verb, .success(.reclaim(ReclaimReply(scheduledPages: pages, enclaves: enclaves))))
            }
        }
    }

    private func reload(id: UInt64) {
        let verb = Verb.reload.rawValue
        guard peer.isAdmin(adminGroup: core.settings.adminGroupID) else {
            return answer(id: id, verbCode: verb, .failure(WireError(.notAdmin, "RELOAD needs root or the admin group")))
        }
        answer(id: id, verbCode: verb, core.reload().map { .reload(ReloadReply(summary: $0)) })
    }

    /// METRICS pages through one rendering (docs/protocol.md): offset 0 takes a new one, later
    /// offsets read that same one, and the offset of its end gets an empty final chunk of it. An
    /// offset past 0 with no rendering taken on this connection is out-of-range. A peer that is
    /// not an admin gets its own uid's series only, as ENCLAVES lists only its own enclaves.
    private func metrics(_ request: MetricsRequest) -> Result<ResponseBody, WireError> {
        guard let render = core.metricsText else {
            return .failure(WireError(.invalidArgument, "this edmmd has no metrics exposition"))
        }
        if request.offset == 0 {
            let viewer: MetricsViewer = peer.isAdmin(adminGroup: core.settings.adminGroupID) ? .everyone : .uid(peer.uid)
            metricsRendering = Array(render(viewer).utf8)
        }
        guard let text = metricsRendering else {
            return .failure(
                WireError(.outOfRange, "offset \(request.offset) with no METRICS rendering taken on this connection: start at offset 0"))
        }
        let offset = Int(request.offset)
        guard offset <= text.count else {
            return .failure(WireError(.outOfRange, "offset \(offset) is past the end of the \(text.count)-byte exposition"))
        }
        var end = min(text.count, offset + min(limits.protocolLimits.maxStringBytes, limits.protocolLimits.maxMessageBytes - 64))
        // Cut at a character boundary, never inside a UTF-8 sequence.
        while end < text.count, end > offset, text[end] & 0xC0 == 0x80 { end -= 1 }
        return .success(
            .metrics(
                MetricsReply(
                    totalBytes: UInt32(clamping: text.count), offset: UInt32(clamping: offset),
                    text: String(decoding: text[offset..<end], as: UTF8.self))))
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

/// edmmd's version, as HELLO and STATUS report it: the repository's VERSION.
public enum EDMMDVersion {
    public static let string = EDMMVersion.release
}
