import EDMMCore
import EDMMProtocol
import SGXSimulator
import Synchronization

/// How a host gets back to edmmd after losing its connection: it tries again and again, waiting
/// `firstDelay`, then twice as long each time up to `maxDelay`, and gives up after `giveUpAfter`.
public struct ReconnectPolicy: Sendable, Equatable {
    public var firstDelay: Duration
    public var maxDelay: Duration
    public var giveUpAfter: Duration

    public init(firstDelay: Duration = .milliseconds(50), maxDelay: Duration = .seconds(1), giveUpAfter: Duration = .seconds(60)) {
        self.firstDelay = firstDelay
        self.maxDelay = maxDelay
        self.giveUpAfter = giveUpAfter
    }
}

/// How a lost connection ended.
enum Recovery: Sendable, Equatable {
    /// Connected again and ATTACHed the same enclave. `announced`: edmmd had sent SHUTDOWN_NOTICE
    /// with `restarting` first, so every request it did not answer was never applied.
    case reattached(announced: Bool)
    /// edmmd no longer knew the enclave (it restarted without the FD store): registered again,
    /// adopting the pages the enclave holds; it has a new handle.
    case reregistered
    case failed(EnclaveHostError)
}

struct RecoveryState {
    var running: Task<Recovery, Never>?
    /// The last outcome, and the generation it produced (or failed to replace).
    var last: (generation: Int, outcome: Recovery)?
    /// `close()` was called: never reconnect again.
    var closed = false
}

extension SimulatedEnclaveHost {
    /// Whether `error` means the connection went away (the request may or may not have reached
    /// edmmd), as opposed to an answer.
    static func isConnectionLoss(_ error: EDMMClientError) -> Bool {
        switch error {
        case .daemonClosedConnection, .sendFailed, .receiveFailed: true
        default: false
        }
    }

    /// A SHUTDOWN_NOTICE on connection `generation`.
    func noteShutdown(_ notice: ShutdownNotice, generation: Int) {
        link.withLock { link in
            if link.generation == generation { link.restartAnnounced = notice.restarting }
        }
    }

    /// The connection of `generation` closed by itself: reconnect in the background, so that an
    /// idle host is back before it needs edmmd again, then send what it owes (TRIM_ACCEPTED).
    func connectionClosed(generation: Int, _ error: EDMMClientError) {
        guard reconnectPolicy != nil, error != .closedByClient else { return }
        Task {
            if case .reattached = await self.recover(after: generation) {
                do { try await self.flush() } catch { self.note("TRIM_ACCEPTED after reconnecting: \(error)") }
            }
        }
    }

    /// Gets back to edmmd after connection `generation` was lost: every caller that saw that
    /// connection fail waits for the same single attempt. Returns at once if a later connection
    /// is already up.
    func recover(after generation: Int) async -> Recovery {
        guard let policy = reconnectPolicy, let socketPath else {
            return .failed(.client(.daemonClosedConnection))
        }
        let task: Task<Recovery, Never> = recovery.withLock { r in
            if r.closed { return Task { .failed(.client(.closedByClient)) } }
            if let last = r.last, last.generation > generation { return Task { last.outcome } }
            if let running = r.running { return running }
            let running = Task { await self.reconnect(policy, socketPath: socketPath) }
            r.running = running
            return running
        }
        return await task.value
    }

    private func reconnect(_ policy: ReconnectPolicy, socketPath: String) async -> Recovery {
        let announced = link.withLock { $0.restartAnnounced }
        let clock = ContinuousClock()
        let deadline = clock.now + policy.giveUpAfter
        var delay = policy.firstDelay
        var outcome: Recovery
        while true {
            let attempt = await reconnectOnce(socketPath: socketPath, announced: announced)
            if case .failed(.client(let error)) = attempt, Self.isRetryable(error), clock.now < deadline,
                !recovery.withLock({ $0.closed })
            {
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, policy.maxDelay)
                continue
            }
            outcome = attempt
            break
        }
        let generation = link.withLock { $0.generation }
        recovery.withLock { r in
            r.running = nil
            r.last = (generation, outcome)
        }
        return outcome
    }

    /// Errors worth another try: edmmd is not there (yet), or still shutting down.
    private static func isRetryable(_ error: EDMMClientError) -> Bool {
        switch error {
        case .socketMissing, .connectionRefused, .connectFailed, .daemonClosedConnection, .sendFailed, .receiveFailed: true
        case .daemon(let wire): wire.code == .shuttingDown
        default: false
        }
    }

    /// One attempt: connect, HELLO, check it is the same simulated EPC, then ATTACH the enclave,
    /// or REGISTER it again if edmmd does not know it.
    private func reconnectOnce(socketPath: String, announced: Bool) async -> Recovery {
        let relay = EventRelay()
        let connection: EDMMConnection
        do {
            connection = try await EDMMConnection.connect(socketPath: socketPath, clientName: clientName, events: relay.deliver)
        } catch {
            return .failed(.client(error))
        }
        guard let machineFD = connection.machineDescriptor, (try? SimulatedMachine.open(fd: machineFD))?.uuidString == machine.uuidString
        else {
            connection.close()
            return .failed(.enclaveLost("edmmd now runs another simulated EPC; this enclave lives in the old one"))
        }
        let handle = self.handle
        do {
            let reply = try await connection.attach(handle)
            guard reply.base == enclave.base, reply.size == enclave.size, reply.label == blueprint.label else {
                connection.close()
                return .failed(.enclaveLost("edmmd's enclave \(handle) is another enclave (\(reply.label))"))
            }
            install(connection, relay, handle: handle)
            return .reattached(announced: announced)
        } catch .daemon(let error) where error.code == .unknownEnclave {
            return await register(on: connection, relay)
        } catch {
            connection.close()
            return .failed(.client(error))
        }
    }

    /// REGISTER again, adopting every accepted page the enclave holds (in use or freed); freed
    /// pages are then FREEd again so that edmmd's pool matches the enclave's record. Pages in the
    /// middle of a flow (trimming, restricting, becoming a TCS) and TCS pages cannot be adopted:
    /// edmmd no longer accounts for them.
    private func register(on connection: EDMMConnection, _ relay: EventRelay) async -> Recovery {
        let runs = tracker.pages.compactMap { entry -> (range: PageRange, freed: Bool)? in
            switch entry.value {
            case .inUse: (entry.range, false)
            case .freed: (entry.range, true)
            default: nil
            }
        }
        var adopted: [PageRange] = []
        for run in runs {
            if let last = adopted.last, last.end == run.range.first {
                adopted[adopted.count - 1] = PageRange(first: last.first, end: run.range.end)
            } else {
                adopted.append(run.range)
            }
        }
        let registered: RegisterReply
        do {
            registered = try await connection.register(
                descriptor: enclave.fd, base: enclave.base, size: enclave.size, label: blueprint.label,
                managed: WireRange(blueprint.managedPages), adopted: adopted.map(WireRange.init))
            for run in runs where run.freed { try await connection.free(registered.enclave, WireRange(run.range)) }
        } catch {
            connection.close()
            return .failed(.client(error))
        }
        let stranded = state.withLock { s in
            defer { s.trimAcceptedBacklog = [] }
            return s.trimAcceptedBacklog
        }
        if !stranded.isEmpty { note("\(stranded.count) trimmed ranges stay PT_TRIM: edmmd lost the enclave before removing them") }
        install(connection, relay, handle: registered.enclave)
        return .reregistered
    }

    private func install(_ connection: EDMMConnection, _ relay: EventRelay, handle: EnclaveHandle) {
        let generation = link.withLock { link in
            link = Link(
                connection: connection, events: relay, handle: handle, generation: link.generation + 1, restartAnnounced: false,
                reconnections: link.reconnections + 1)
            return link.generation
        }
        relay.attach(self, generation: generation)
    }

    func note(_ message: String) {
        state.withLock { $0.stats.asyncErrors.append(message) }
    }
}
