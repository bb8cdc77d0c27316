import EDMMKubernetes
import EDMMProtocol
import EDMMSystem
import Glibc

/// HELLO: the protocol version, the limits, and the device descriptor clients need (the
/// simulated EPC), or the one a client offers back to a restarted daemon.
extension SessionState {
    func hello(_ hello: HelloRequest, id: UInt64, offersMachine: Bool, descriptors: MessageDescriptors) throws(WireError) {
        guard phase == .awaitingHello else { throw WireError(.invalidArgument, "HELLO was already exchanged on this connection") }
        let supported = ProtocolVersion.supported
        let lowest = max(hello.minVersion, supported.lowerBound)
        let highest = min(hello.maxVersion, supported.upperBound)
        guard lowest <= highest else {
            throw WireError(
                .unsupportedVersion,
                "client speaks versions \(hello.minVersion)...\(hello.maxVersion), edmmd \(supported.lowerBound)...\(supported.upperBound)")
        }
        if core.settings.kubernetes.enabled { peer.scope = try resolvedScope() }
        let handed = offersMachine ? try offeredDevice(descriptors) : core.backend.helloDescriptor
        phase = .ready
        helloDone()
        // The reply borrows the device's descriptor: keep it open until the reply is sent.
        handedDescriptor = handed
        let reply = HelloReply(
            version: highest, mode: core.backend.mode, daemonVersion: EDMMDVersion.string, daemonPID: UInt32(bitPattern: getpid()),
            limits: limits.protocolLimits, carriesMachineDescriptor: handed != nil)
        logger.debug("hello", metadata: ["client": "\(hello.clientName)", "peer": "\(peer)"])
        answer(id: id, verbCode: Verb.hello.rawValue, .success(.hello(reply)), descriptor: handed?.fd)
    }

    /// The pod and container of the peer (nil: a host process). Read at HELLO, as early as the
    /// protocol allows: without SO_PEERPIDFD the pid could be reused later.
    private func resolvedScope() throws(WireError) -> ContainerScope? {
        switch core.peerScopes.scope(socket: fd, pid: peer.pid) {
        case .success(let scope):
            if let scope { logger.debug("peer scope", metadata: ["scope": "\(scope)"]) }
            return scope
        case .failure(let failure):
            logger.notice("connection refused: its Kubernetes scope is unknown", metadata: ["peer": "\(peer)", "reason": "\(failure)"])
            throw WireError(.notOwner, "edmmd runs in Kubernetes mode and cannot tell which pod this process is in: \(failure)")
        }
    }

    /// The device a HELLO with the machine flag carried (descriptor 0), once the daemon uses it:
    /// its own, or its predecessor's, taken over (`DeviceTakeOver`).
    func offeredDevice(_ descriptors: MessageDescriptors) throws(WireError) -> any SharedDeviceDescriptor {
        guard let takeOver = core.backend.takeOver else {
            throw WireError(.invalidArgument, "edmmd runs on the \(core.backend.mode) SGX device; it has no simulated EPC to take over")
        }
        guard !descriptors.truncated, let fd = descriptors.claim(0) else {
            throw WireError(
                .badDescriptor,
                """
                HELLO with the machine flag must carry the simulated EPC as descriptor 0 (and at most \
                \(limits.protocolLimits.maxDescriptorsPerMessage))
                """
            )
        }
        let adopted = try takeOver.adopt(fd)
        if let replaced = adopted.replaced {
            core.fdStore?.replaceMachine(adopted.handed.fd)
            logger.notice(
                "took over the simulated EPC of a previous edmmd, offered by a client",
                metadata: ["machine": "\(replaced.taken)", "replaced": "\(replaced.previous)", "peer": "\(peer)"])
        }
        return adopted.handed
    }
}
