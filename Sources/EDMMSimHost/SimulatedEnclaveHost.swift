import EDMMClient
import EDMMCore
import EDMMProtocol
import Glibc
import SGXDevice
import SGXSimulator
import Synchronization

/// The untrusted host of one simulated enclave, with the enclave side of every EDMM flow: it
/// builds the enclave in the daemon's simulated EPC (ECREATE, EADD of a small image, EINIT,
/// mmap), registers it by passing its descriptor, then runs memory operations the way an SGX2
/// runtime does: ALLOCATE then EACCEPT the fresh pages (never the reused ones), TRIM then
/// EACCEPT(TRIM) then TRIM_ACCEPTED, RESTRICT then EACCEPT(PR), EMODPE then RELAX, MAKE_TCS then
/// EACCEPT(TCS), and RECLAIM notices answered with EACCEPT(TRIM) and TRIM_ACCEPTED.
///
/// The enclave trusts only its own `CommitTracker`: a reply that would make it accept a page it
/// holds, or give back a page it did not free, is refused (`EnclaveHostError.refused`) before
/// any ENCLU runs. Exits are counted like a runtime's: one OCALL per request message, one ECALL
/// per RECLAIM notice handled; the simulator counts the faults and EAUGs itself.
///
/// With a `ReconnectPolicy` the host survives a restart of edmmd: it reconnects, says HELLO and
/// ATTACHes its enclave again (or registers it again, adopting its committed pages, if edmmd lost
/// it), and resolves the requests the lost connection left unanswered (see `perform`).
///
/// Thread safety: `state` (a mutex) owns the tracker, the TRIM_ACCEPTED backlog and the stats;
/// `link` (a mutex) owns the current connection, its event relay and the enclave's handle;
/// the simulated CPU is safe from any thread; pushes are handled by one task of the host's own,
/// fed by the connection's reader thread through an `EventRelay`.
public final class SimulatedEnclaveHost: Sendable {
    public let machine: SimulatedMachine
    public let enclave: SimulatedEnclave
    public let cpu: EnclaveCPU
    public let blueprint: EnclaveBlueprint
    /// Where edmmd listens (nil for a host launched on an adopted socket: it cannot reconnect).
    public let socketPath: String?
    public let clientName: String
    /// How to get back to edmmd when the connection is lost; nil: the host stays disconnected.
    public let reconnectPolicy: ReconnectPolicy?
    /// The enclave's counters right after registration (the baseline for `countersSinceRegistration`).
    public let registeredCounters: CounterSnapshot

    struct State {
        var tracker: CommitTracker
        /// Pages EACCEPTed as TRIM whose TRIM_ACCEPTED has not been sent yet.
        var trimAcceptedBacklog: [PageRange] = []
        var stats = HostStats()
        /// Times the enclave registered again with an edmmd that had lost it. A grant answered
        /// under an earlier registration is void: the new edmmd's ledger does not have it.
        var registrations = 0
        /// Notices of connections before this generation belong to a daemon that lost the enclave.
        var firstGenerationOfRegistration = 0
    }

    let state: Mutex<State>
    /// EACCEPTs resumed after a not-present #PF; counted apart from `state`, whose lock the
    /// EACCEPTs of a grant run under.
    let eacceptsResumed = Atomic<UInt64>(0)

    /// The connection in use and what belongs to it.
    struct Link {
        var connection: EDMMConnection
        var events: EventRelay
        var handle: EnclaveHandle
        /// Bumped by every reconnection; a request knows which connection it went out on.
        var generation = 0
        /// edmmd sent SHUTDOWN_NOTICE with `restarting` on this connection.
        var restartAnnounced = false
        var reconnections = 0
    }

    let link: Mutex<Link>
    /// The reconnection in progress, if any, and the outcome of the last one.
    let recovery = Mutex(RecoveryState())

    private init(
        connection: EDMMConnection, machine: SimulatedMachine, enclave: SimulatedEnclave, cpu: EnclaveCPU,
        handle: EnclaveHandle, blueprint: EnclaveBlueprint, events: EventRelay, socketPath: String?, clientName: String,
        reconnect: ReconnectPolicy?
    ) {
        self.machine = machine
        self.enclave = enclave
        self.cpu = cpu
        self.blueprint = blueprint
        self.socketPath = socketPath
        self.clientName = clientName
        reconnectPolicy = socketPath == nil ? nil : reconnect
        link = Mutex(Link(connection: connection, events: events, handle: handle))
        state = Mutex(State(tracker: CommitTracker(managed: blueprint.managedPages)))
        registeredCounters = enclave.counters
    }

    /// The current connection to edmmd (a new one after each reconnection).
    public var connection: EDMMConnection { link.withLock { $0.connection } }
    /// The enclave's handle at edmmd (a new one if edmmd had to register it again).
    public var handle: EnclaveHandle { link.withLock { $0.handle } }
    /// How many times the host reconnected to edmmd.
    public var reconnections: Int { link.withLock { $0.reconnections } }
    var events: EventRelay { link.withLock { $0.events } }

    // MARK: Launch

    /// Connects to edmmd at `socketPath`, builds the enclave and registers it. With `reconnect`,
    /// the host gets back to edmmd by itself when the connection is lost.
    public static func launch(
        socketPath: String, blueprint: EnclaveBlueprint, clientName: String = "edmm-sim host", reconnect: ReconnectPolicy? = nil
    ) async throws(EnclaveHostError) -> SimulatedEnclaveHost {
        let relay = EventRelay()
        let connection: EDMMConnection
        do {
            connection = try await EDMMConnection.connect(socketPath: socketPath, clientName: clientName, events: relay.deliver)
        } catch {
            throw .client(error)
        }
        return try await launch(
            on: connection, blueprint: blueprint, events: relay, socketPath: socketPath, clientName: clientName, reconnect: reconnect)
    }

    /// The same over an already connected socket (taken over).
    public static func launch(
        adoptingSocket fd: Int32, blueprint: EnclaveBlueprint, clientName: String = "edmm-sim host"
    ) async throws(EnclaveHostError) -> SimulatedEnclaveHost {
        let relay = EventRelay()
        let connection: EDMMConnection
        do {
            connection = try await EDMMConnection.connect(adoptingSocket: fd, clientName: clientName, events: relay.deliver)
        } catch {
            throw .client(error)
        }
        return try await launch(
            on: connection, blueprint: blueprint, events: relay, socketPath: nil, clientName: clientName, reconnect: nil)
    }

    private static func launch(
        on connection: EDMMConnection, blueprint: EnclaveBlueprint, events: EventRelay, socketPath: String?, clientName: String,
        reconnect: ReconnectPolicy?
    ) async throws(EnclaveHostError) -> SimulatedEnclaveHost {
        try validate(blueprint)
        guard let machineFD = connection.machineDescriptor else { throw .daemonNotSimulated }
        let (machine, enclave, cpu) = try build(blueprint, machineFD: machineFD)
        let registered: RegisterReply
        do {
            registered = try await connection.register(
                descriptor: enclave.fd, base: enclave.base, size: enclave.size, label: blueprint.label,
                preheatPages: blueprint.preheatPages,
                managed: WireRange(blueprint.managedPages))
        } catch {
            throw .client(error)
        }
        let host = SimulatedEnclaveHost(
            connection: connection, machine: machine, enclave: enclave, cpu: cpu, handle: registered.enclave,
            blueprint: blueprint, events: events, socketPath: socketPath, clientName: clientName, reconnect: reconnect)
        events.attach(host, generation: 0)
        if !registered.preheat.isEmpty {
            let ranges = try host.pageRanges(registered.preheat)
            for range in ranges {
                try host.takeGrant(granted: range, fresh: [range], reused: [], asked: nil)
            }
        }
        return host
    }

    private static func validate(_ b: EnclaveBlueprint) throws(EnclaveHostError) {
        let imageEnd = UInt64(EnclaveBlueprint.image.count) * Page.size
        guard b.size >= 1 << 16, b.size & (b.size - 1) == 0 else {
            throw .invalidBlueprint("ELRANGE size \(b.size) is not a power of two of at least 64 KiB")
        }
        guard b.managedOffset % Page.size == 0, b.managedOffset >= imageEnd, b.managedOffset < b.size else {
            throw .invalidBlueprint(
                "managed offset \(b.managedOffset) must be page-aligned, after the image (\(imageEnd) bytes) and inside ELRANGE")
        }
    }

    /// ECREATE, EADD of the image, EINIT and the host's mappings, in the daemon's machine (also
    /// used by runtimes that manage the enclave themselves, such as `edmm-sim bench`'s baseline).
    public static func build(
        _ b: EnclaveBlueprint, machineFD: Int32
    ) throws(EnclaveHostError) -> (SimulatedMachine, SimulatedEnclave, EnclaveCPU) {
        try validate(b)
        let machine = try simulator { () throws(SimulatorError) in try SimulatedMachine.open(fd: machineFD) }
        let enclave = try simulator { () throws(SimulatorError) in try SimulatedEnclave.create(machine: machine, base: b.size, size: b.size)
        }
        for (page, kind) in EnclaveBlueprint.image {
            let secinfo: SecInfoFlags
            switch kind {
            case .tcs: secinfo = .pageType(.tcs)
            case .text: secinfo = [.pageType(.reg), .r, .x]
            case .data: secinfo = [.pageType(.reg), .r, .w]
            }
            let (code, _) = enclave.addPages(offset: page * Page.size, length: Page.size, secinfo: secinfo)
            guard code == 0 else { throw .build(step: "ADD_PAGES of image page \(page)", errno: code) }
        }
        let rc = enclave.initialize()
        guard rc == 0 else { throw .build(step: "INIT", errno: rc) }
        // Each image page within its cap (a TCS allows RW), everything else RW.
        for (page, kind) in EnclaveBlueprint.image {
            let rc = enclave.mmap(address: enclave.base + page * Page.size, length: Page.size, protection: kind == .text ? .rx : .rw)
            guard rc == 0 else { throw .build(step: "mmap of image page \(page)", errno: rc) }
        }
        let imageEnd = UInt64(EnclaveBlueprint.image.count) * Page.size
        let mapped = enclave.mmap(address: enclave.base + imageEnd, length: enclave.size - imageEnd, protection: .rw)
        guard mapped == 0 else { throw .build(step: "mmap of the heap", errno: mapped) }
        let cpu = try simulator { () throws(SimulatorError) in try enclave.cpu() }
        return (machine, enclave, cpu)
    }

    private static func simulator<T>(_ body: () throws(SimulatorError) -> T) throws(EnclaveHostError) -> T {
        do { return try body() } catch { throw .simulator(error) }
    }

    // MARK: Views

    /// The enclave's own page record.
    public var tracker: CommitTracker { state.withLock { $0.tracker } }
    public var stats: HostStats {
        var stats = state.withLock { $0.stats }
        stats.eacceptsResumed = eacceptsResumed.load(ordering: .relaxed)
        return stats
    }
    /// What the simulator counted for this enclave since it was registered.
    public var countersSinceRegistration: CounterSnapshot { enclave.counters.since(registeredCounters) }

    // MARK: Closing

    /// Sends what is left of the TRIM_ACCEPTED backlog, then UNREGISTER, then closes the
    /// connection and the enclave.
    public func unregister() async throws(EnclaveHostError) {
        try await flush()
        let (connection, handle) = link.withLock { ($0.connection, $0.handle) }
        do {
            try await connection.unregister(handle)
        } catch {
            throw .client(error)
        }
        close()
    }

    /// Closes the connection (the daemon unregisters the enclave) and this process's enclave, and
    /// stops reconnecting.
    public func close() {
        recovery.withLock { $0.closed = true }
        connection.close()
        enclave.close()
    }

    // MARK: Helpers

    /// Validates wire ranges against ELRANGE.
    func pageRanges(_ ranges: [WireRange]) throws(EnclaveHostError) -> [PageRange] {
        var result: [PageRange] = []
        for range in ranges {
            switch range.pageRange(elrangeSize: enclave.size) {
            case .success(let r): result.append(r)
            case .failure(let error): throw .refused(.malformedGrant("\(range): \(error.message)"))
            }
        }
        return result
    }

    func address(_ page: UInt64) -> UInt64 { enclave.base + page * Page.size }
}
