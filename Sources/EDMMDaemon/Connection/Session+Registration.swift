import EDMMCore
import EDMMProtocol
import EDMMSystem

/// REGISTER and ATTACH: a connection takes an enclave on (a new one from its descriptor, or one
/// another connection registered), within its enclave limit.
extension SessionState {
    var enclaveSlotsLeft: Int { limits.protocolLimits.maxEnclavesPerConnection - enclaves.count - pendingAttachments }

    func tooManyEnclaves() -> WireError {
        let limit = limits.protocolLimits.maxEnclavesPerConnection
        return WireError(
            .tooManyEnclaves, "this connection already uses \(enclaves.count + pendingAttachments) enclaves, the limit",
            detail: .limit(limit: UInt64(limit), actual: UInt64(enclaves.count + pendingAttachments + 1)))
    }

    /// Checks a REGISTER, reserves its slot of the enclave limit and has the enclave it names
    /// opened off the socket loop (`OpeningRegistration`), whose queue answers; throws the
    /// refusals it can tell at once.
    func register(
        _ request: RegisterRequest, options: RequestFlags, target: ReplyTarget, descriptors: MessageDescriptors
    ) throws(WireError) {
        let index = Int(request.descriptorIndex)
        if descriptors.truncated {
            throw WireError(
                .badDescriptor,
                "the message carried more than \(limits.protocolLimits.maxDescriptorsPerMessage) descriptors; all were closed",
                detail: .limit(limit: UInt64(limits.protocolLimits.maxDescriptorsPerMessage), actual: UInt64(descriptors.count + 1)))
        }
        if descriptors.wasClaimed(index) {
            throw WireError(.badDescriptor, "descriptor \(index) of this message was already used by another REGISTER")
        }
        guard let fd = descriptors.claim(index) else {
            throw WireError(.badDescriptor, "no descriptor at index \(index): the message carried \(descriptors.count)")
        }
        guard enclaveSlotsLeft > 0 else { throw tooManyEnclaves() }
        let registration = try ValidatedRegistration(request, maxPreheatPages: core.settings.maxPreheatPages)
        pendingAttachments += 1
        let opening = OpeningRegistration(core: core, peer: peer, options: options, registration: registration, target: target)
        // Ownership passes to the opening (a non-copyable value cannot travel in a closure).
        let raw = fd.take()
        // Opening a simulated enclave waits for the simulated EPC's machine lock, which a client can
        // hold for as long as it likes: never on the socket loop, which serves every connection.
        session.openings.async { opening.open(OwnedDescriptor(raw)) }
    }

    func attach(_ handle: EnclaveHandle, target: ReplyTarget) throws(WireError) {
        if let enclave = enclaves[handle] {
            let reply = AttachReply(
                base: enclave.base, size: enclave.size, label: enclave.label, device: enclave.device, managed: WireRange(enclave.managed))
            return answer(id: target.id, verbCode: target.verb.rawValue, .success(.attach(reply)))
        }
        guard let enclave = core.registry.lookupIncludingRegistering(handle) else {
            throw WireError(.unknownEnclave, "no registered enclave has handle \(handle)")
        }
        guard peer.canUse(owner: enclave.owner) else {
            let who = enclave.owner.scope == nil ? "that uid (or root on the host)" : "that pod"
            throw WireError(.notOwner, "enclave \(handle) belongs to \(enclave.owner.ownerDescription); only \(who) may attach it")
        }
        guard enclaveSlotsLeft > 0 else { throw tooManyEnclaves() }
        pendingAttachments += 1
        enclave.attach(target)
    }
}

/// A REGISTER on its way to its enclave's queue: opens the descriptor on the device, checks its
/// ELRANGE and that no other registration holds the enclave, and hands it to the new enclave's
/// queue (`EnclaveContext.activate`), which answers. A refusal is answered as enclaves answer
/// (`Session.deliver`), and gives the reserved slot back.
struct OpeningRegistration: Sendable {
    let core: DaemonCore
    let peer: PeerCredentials
    let options: RequestFlags
    let registration: ValidatedRegistration
    let target: ReplyTarget

    func open(_ fd: consuming OwnedDescriptor) {
        do throws(WireError) {
            try activate(core.backend.openEnclave(fd))
        } catch {
            target.session.deliver(CollectionOfOne(Completion(target, .failure(error))))
        }
    }

    private func activate(_ device: any OpenedEnclave) throws(WireError) {
        if let elrange = device.elrange, elrange.base != registration.base || elrange.size != registration.size {
            device.close()
            throw WireError(
                .invalidArgument,
                """
                ELRANGE [0x\(String(registration.base, radix: 16)), +0x\(String(registration.size, radix: 16))) does not match the \
                \(device.kind) enclave's [0x\(String(elrange.base, radix: 16)), +0x\(String(elrange.size, radix: 16)))
                """
            )
        }
        let identity = EnclaveIdentity(
            handle: core.registry.newHandle(), label: registration.label, owner: peer, device: device.kind, base: registration.base,
            size: registration.size, managed: registration.managed, options: options)
        let enclave = EnclaveContext(identity: identity, device: device, core: core)
        switch core.registry.claim(device, for: enclave.handle, owner: peer.uid, registering: enclave) {
        case .claimed: break
        case .unchecked(let error): core.noteUncheckedRegistration(error)
        case .taken(let existing, let owner):
            enclave.close(reason: "a second REGISTER of enclave \(existing)") {}
            throw WireError.alreadyRegistered(existing, owner: owner, asker: peer)
        }
        enclave.activate(registration, target: target)
    }
}
