import EDMMClient
import EDMMCore
import EDMMProtocol
import SGXDevice
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
            // Offering the enclave's simulated EPC lets an edmmd restarted without its FD store
            // take it over instead of its own new one.
            connection = try await EDMMConnection.connect(
                socketPath: socketPath, clientName: clientName, simulatedMachine: machine.fd, events: relay.deliver)
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

    /// REGISTER again, adopting every page the enclave tracks: edmmd records each in the state the
    /// EPCM shows, so its new ledger equals the EPCM even for pages a crash caught in the middle of
    /// a flow. Then the enclave settles what the crash left open, probing with EACCEPT where it
    /// cannot know (an EACCEPT whose attributes do not match changes nothing):
    /// - freed pages the dead daemon may have reclaimed (EMODT done, notice lost): EACCEPT(TRIM)
    ///   succeeds on those, which are then given back with TRIM_ACCEPTED; the others are FREEd
    ///   again so that edmmd's pool matches the enclave's record;
    /// - pages EACCEPTed as TRIM: TRIM_ACCEPTED again; a page removed before the crash is a hole
    ///   edmmd does not track (invalid-page-state), which is what TRIM_ACCEPTED wanted anyway.
    /// Pages of requests the crash left unanswered are settled by `perform` (`settleInterrupted`).
    private func register(on connection: EDMMConnection, _ relay: EventRelay) async -> Recovery {
        // The record, taken under the lock that grants are accepted under (see `takeGrant`); a
        // grant of the dead edmmd not accepted by now never will be. The TRIM_ACCEPTED backlog is
        // part of the record (its pages are EACCEPTed as TRIM) and is sent below.
        let tracked = state.withLock { s in
            s.registrations += 1
            s.trimAcceptedBacklog = []
            return s.tracker.pages.map { ($0.range, $0.value) }
        }
        let adopted = coalesced(tracked.map(\.0))
        let registered: RegisterReply
        do {
            registered = try await connection.register(
                descriptor: enclave.fd, base: enclave.base, size: enclave.size, label: blueprint.label,
                managed: WireRange(blueprint.managedPages), adopted: adopted.map(WireRange.init))
        } catch {
            connection.close()
            return .failed(.client(error))
        }
        var toFree: [PageRange] = []
        var toRemove: [PageRange] = []
        for (range, page) in tracked {
            switch page {
            case .freed:
                for page in range.first..<range.end {
                    let single = PageRange(first: page, count: 1)
                    if cpu.eaccept(address(page), flags: [.pageType(.trim), .modified]) == .success {
                        state.withLock { $0.tracker.reclaimedWhileAway(single) }
                        toRemove.append(single)
                    } else {
                        toFree.append(single)
                    }
                }
            case .trimAccepted:
                toRemove.append(range)
            default:
                break
            }
        }
        do {
            for range in coalesced(toFree) { try await connection.free(registered.enclave, WireRange(range)) }
            for range in coalesced(toRemove) { try await removeAgain(range, enclave: registered.enclave, on: connection) }
        } catch {
            connection.close()
            return .failed(.client(error))
        }
        let generation = install(connection, relay, handle: registered.enclave)
        state.withLock { $0.firstGenerationOfRegistration = generation }
        return .reregistered
    }

    /// TRIM_ACCEPTED of pages EACCEPTed as TRIM before a crash; pages already removed (holes to
    /// edmmd) count as removed, page by page where a range mixes both.
    private func removeAgain(_ range: PageRange, enclave handle: EnclaveHandle, on connection: EDMMConnection) async throws(EDMMClientError)
    {
        do {
            try await connection.trimAccepted(handle, WireRange(range))
        } catch .daemon(let error) where error.code == .invalidPageState {
            if range.count > 1 {
                for page in range.first..<range.end {
                    try await removeAgain(PageRange(first: page, count: 1), enclave: handle, on: connection)
                }
                return
            }
        }
        state.withLock { $0.tracker.removed(range) }
    }

    /// What became of a request a dead edmmd left unanswered, found by probing its pages with the
    /// EACCEPT its reply would have called for (an ioctl it ran is in the EPCM even if its reply
    /// was lost). Returns the outcome if the request took full effect (nothing more to do), nil if
    /// it did not (the pages are back where they were before it, page by page). After a
    /// re-registration a FREE or RELAX stands (the enclave registered again with its pages as it
    /// holds them); after reattaching to a restored edmmd a FREE is undone (the restored ledger has
    /// the pages committed).
    func settleInterrupted(_ operation: HostOperation, saved: [(range: PageRange, state: HostPage?)], reregistered: Bool) -> HostOutcome? {
        func probe(_ range: PageRange, _ flags: SecInfoFlags, done: (PageRange) -> Void) -> Bool {
            var all = true
            for page in range.first..<range.end {
                let single = PageRange(first: page, count: 1)
                if cpu.eaccept(address(page), flags: flags) == .success {
                    done(single)
                } else {
                    all = false
                    let before = saved.first { $0.range.contains(single) }?.state
                    state.withLock { s in s.tracker.restore([(single, before)]) }
                }
            }
            return all
        }
        switch operation {
        case .free, .relax:
            if reregistered { return .done(nil) }
            state.withLock { $0.tracker.restore(saved) }
            return nil
        case .trim(let range):
            let all = probe(range, [.pageType(.trim), .modified]) { page in
                state.withLock { s in
                    s.tracker.trimAccepted(page)
                    s.trimAcceptedBacklog.append(page)
                }
            }
            return all ? .done(nil) : nil
        case .restrict(let range, let permissions):
            let all = probe(range, [.pageType(.reg), .pr, SecInfoFlags(permissions: permissions)]) { page in
                state.withLock { $0.tracker.restricted(page) }
            }
            return all ? .done(nil) : nil
        case .makeTCS(let page):
            let all = probe(PageRange(first: page, count: 1), [.pageType(.tcs), .modified]) { page in
                state.withLock { $0.tracker.becameTCS(page) }
            }
            return all ? .done(nil) : nil
        case .allocate, .allocateAt:
            return nil
        }
    }

    private func coalesced(_ ranges: [PageRange]) -> [PageRange] {
        var result: [PageRange] = []
        for range in ranges.sorted() {
            if let last = result.last, last.end == range.first {
                result[result.count - 1] = PageRange(first: last.first, end: range.end)
            } else {
                result.append(range)
            }
        }
        return result
    }

    @discardableResult
    private func install(_ connection: EDMMConnection, _ relay: EventRelay, handle: EnclaveHandle) -> Int {
        let generation = link.withLock { link in
            link = Link(
                connection: connection, events: relay, handle: handle, generation: link.generation + 1, restartAnnounced: false,
                reconnections: link.reconnections + 1)
            return link.generation
        }
        relay.attach(self, generation: generation)
        return generation
    }

    func note(_ message: String) {
        state.withLock { $0.stats.asyncErrors.append(message) }
    }
}
