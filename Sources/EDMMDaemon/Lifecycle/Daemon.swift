import Dispatch
import EDMMConfig
import EDMMCore
import EDMMProtocol
import EDMMSystem
import Glibc
import Logging
import SGXKernel
import Synchronization

/// How a daemon is wired into its process; everything has a default.
public struct DaemonOptions: Sendable {
    public var logger: Logger
    /// The level every logger of the daemon follows (RELOAD changes it).
    public var logLevel: SharedLogLevel
    public var notifier: any ServiceNotifier = SilentServiceNotifier()
    /// Test-only faults; nil in a real daemon.
    public var faultInjection: FaultInjection?
    /// The control socket; nil binds `[daemon] socket` with its mode and group.
    public var listener: ListenerSource?
    /// Where RELOAD and SIGHUP read the configuration; nil: RELOAD is refused.
    public var configSource: ConfigSource?
    /// The Prometheus exposition METRICS serves; nil until a metrics module provides it.
    public var metricsText: (@Sendable (MetricsViewer) -> String)?
    /// The latency and batch-size histograms; a metrics module provides them.
    public var instruments = DaemonInstruments.none
    /// How SGX2 support is checked when `device = "auto"` or `"kernel"` (tests replace it).
    public var hostSupport: @Sendable () -> SGXHostSupport = { SGXHostSupport.check() }
    /// The syscall funnel and device node through which kernel enclave descriptors are recognised.
    public var kernelDevice = KernelDeviceAccess()
    /// The service manager's FD store (`SystemdDescriptorStore` under systemd), used when
    /// `[systemd] fd_store` is on; nil: a restart loses every registration.
    public var descriptorStore: (any DescriptorStore)?
    /// What the FD store kept from the previous run, by name (`InheritedDescriptors.stored`). The
    /// daemon takes them over: it restores what it can and closes (and unstores) the rest.
    public var storedDescriptors: [String: Int32] = [:]
    /// How long a restored enclave waits for a client to ATTACH it again before it is unregistered.
    public var reattachGrace: Duration = .seconds(60)
    /// Where HELLO finds a peer's pod and container with `[kubernetes] enabled` (tests inject scopes).
    public var peerScopes: any PeerScopeSource = CgroupPeerScopeSource()

    public init(logger: Logger, logLevel: SharedLogLevel) {
        self.logger = logger
        self.logLevel = logLevel
    }
}

/// edmmd: the listener, the sessions, one queue per enclave, the supervisor. Create it, `start()`
/// it, and `shutdown()` it; `DaemonService` does this inside a ServiceGroup for the executable.
public final class Daemon: Sendable {
    let core: DaemonCore
    private let supervisor: Supervisor
    private let listenerSource: ListenerSource
    private let listener = Mutex<ControlListener?>(nil)
    private let configSource: ConfigSource?
    private let config: Mutex<DaemonConfig>
    private let state = Mutex(State.created)
    private let lastReload = Mutex(ReloadRecord(successful: true, lastSuccessSeconds: WallClock.seconds))

    private enum State { case created, running, stopping, stopped }

    public init(config: DaemonConfig, options: DaemonOptions) throws(StartupError) {
        let simulateFlag = options.configSource?.overrides.simulate ?? false
        var stored = options.storedDescriptors
        let fdStore = options.descriptorStore.flatMap { store in
            config.systemd.fdStore ? FDStoreKeeper.open(store: store, stored: &stored, logger: options.logger) : nil
        }
        let storedMachine = fdStore == nil ? nil : stored.removeValue(forKey: "machine")
        let backend = try DeviceChoice.choose(
            config, simulateFlag: simulateFlag, hostSupport: options.hostSupport,
            storedMachine: storedMachine.flatMap { fd in OwnedDescriptor(fd) }, kernel: options.kernelDevice, logger: options.logger)
        let settings: DaemonSettings
        do {
            settings = try DaemonSettings(config, epcTotalPages: backend.epcTotalPages)
        } catch {
            throw .configuration("\(error)")
        }
        options.logLevel.value = settings.logLevel
        core = DaemonCore(
            backend: backend, settings: settings, logger: options.logger, logLevel: options.logLevel,
            notifier: options.notifier, faultInjection: options.faultInjection, metricsText: options.metricsText,
            instruments: options.instruments, socketLoop: try SocketLoop(), fdStore: fdStore, peerScopes: options.peerScopes)
        supervisor = Supervisor(core: core)
        listenerSource =
            options.listener ?? .bind(path: config.daemon.socket, mode: config.daemon.socketMode, group: config.daemon.socketGroup)
        configSource = options.configSource
        self.config = Mutex(config)
        if let fdStore {
            if let machine = backend.storableDescriptor {
                fdStore.storeMachine(machine)
            } else if storedMachine != nil {
                fdStore.store.remove(name: "machine")  // the kernel device now: no simulated EPC to keep
            }
            Self.restoreEnclaves(fdStore, from: &stored, core: core, grace: options.reattachGrace)
        }
        for (name, fd) in stored {
            options.logger.notice("dropping the stored descriptor \(name): nothing of this daemon uses it")
            Glibc.close(fd)
            options.descriptorStore?.remove(name: name)
        }
        core.setReloader { [weak self] () throws(WireError) -> String in
            guard let self else { throw WireError(.shuttingDown, "edmmd is shutting down") }
            return try self.reload()
        }
    }

    /// The configuration in force (flags applied; replaced by a successful reload). The metrics
    /// endpoint reads `[metrics] listen` (set by --metrics) here.
    public var configuration: DaemonConfig { config.withLock { $0 } }

    /// Which device the daemon uses, and why (also in every STATUS).
    public var mode: WireDeviceKind { core.backend.mode }
    public var modeReason: String { core.backend.reason }
    /// Whether a restart finds the registrations again (the FD store is in use): SHUTDOWN_NOTICE
    /// then tells clients to reconnect and ATTACH.
    public var keepsRegistrationsAcrossRestart: Bool { core.fdStore != nil }
    /// The control socket's path, when known.
    public var socketPath: String? {
        switch listenerSource {
        case .bind(let path, _, _): path
        case .inherited(_, let path): path
        }
    }

    /// Opens the control socket, starts accepting and the supervisor, and tells the service
    /// manager it is ready.
    public func start() throws(StartupError) {
        let shouldStart = state.withLock { state -> Bool in
            guard state == .created else { return false }
            state = .running
            return true
        }
        guard shouldStart else { return }
        let core = self.core
        let listener = try ControlListener(listenerSource, queue: core.queue) { fd in core.admit(fd) }
        self.listener.withLock { $0 = listener }
        try core.socketLoop.start()
        listener.start()
        supervisor.start()
        core.fdStore?.start()
        core.logger.info(
            "edmmd \(EDMMDVersion.string) serving",
            metadata: [
                "socket": "\(socketPath ?? "fd \(listener.fd)")", "device": "\(mode)", "why": "\(modeReason)",
                "epc": "\(Page.bytes(core.backend.epcTotalPages) >> 20) MiB",
                "batching": "\(core.settings.flush.batching)",
            ])
        core.notifier.ready(status: "serving; \(supervisor.statusLine())")
    }

    /// Stops accepting, answers new work with shutting-down, flushes every enclave's queue,
    /// sends SHUTDOWN_NOTICE, writes out the replies, and closes everything. Each of the three
    /// waits (the flushes, the replies, the closes) lasts at most `drainTimeout`: an enclave queue
    /// may wait on a simulated EPC lock a stopped client holds, and a stop must still end. With
    /// `restarting`, clients are told their registrations survive (systemd restart with the FD
    /// store).
    public func shutdown(restarting: Bool = false, drainTimeout: Duration = .seconds(5)) async {
        let shouldStop = state.withLock { state -> Bool in
            guard state == .running || state == .created else { return false }
            state = .stopping
            return true
        }
        guard shouldStop else { return }
        let core = self.core
        core.shuttingDown.store(true, ordering: .releasing)
        core.logger.info("shutting down")
        supervisor.stop()
        // Runs on the core queue, so after a supervisor tick in progress: STOPPING=1 is the last
        // thing the service manager hears before the exit.
        await listener.withLock { $0 }?.stop()
        core.notifier.stopping()
        let sessions = core.sessions
        let enclaves = core.registry.all
        let stuck = await Self.waitAll(enclaves, timeout: drainTimeout) { enclave, done in enclave.drain(completion: done) }
        if !stuck.isEmpty {
            core.logger.warning(
                """
                enclaves \(stuck.map(\.handle)) did not finish their queued work within \(drainTimeout) (waiting on a simulated EPC lock \
                a stopped client holds?); stopping without it
                """
            )
        }
        let notice = ShutdownNotice(
            restarting: restarting, message: restarting ? "edmmd is restarting; reconnect and ATTACH" : "edmmd is stopping")
        let unread = await Self.waitAll(sessions, timeout: drainTimeout) { session, done in
            session.finish(notice: notice, completion: done)
        }
        if !unread.isEmpty {
            core.logger.warning("some clients did not read their last replies within \(drainTimeout); closing them")
            for session in core.sessions { session.abort(reason: "shutdown deadline") }
        }
        // Every connection is closed: the ledgers are final, and the next daemon takes them over;
        // unless an enclave is stuck, whose ledger is not: the last state written stays, unclean.
        if stuck.isEmpty { await core.fdStore?.finish(core.registry.all) }
        let reason = core.fdStore == nil ? "edmmd stopped" : "edmmd stopped; the FD store keeps it for the next edmmd"
        _ = await Self.waitAll(core.registry.all, timeout: drainTimeout) { enclave, done in enclave.close(reason: reason, completion: done)
        }
        core.socketLoop.stop()
        state.withLock { $0 = .stopped }
        core.logger.info("stopped")
    }

    /// Re-reads the configuration file: applies what can change at run time, reports what needs a
    /// restart, and keeps the old configuration (saying why) when the new one is invalid.
    @discardableResult
    public func reload() throws(WireError) -> String {
        core.notifier.reloading()
        do throws(WireError) {
            let summary = try reloadConfiguration()
            lastReload.withLock { $0 = ReloadRecord(successful: true, lastSuccessSeconds: WallClock.seconds) }
            core.logger.info("configuration reloaded: \(summary)")
            core.notifier.ready(status: "serving; reloaded: \(summary)")
            return summary
        } catch {
            lastReload.withLock { $0.successful = false }
            core.logger.error("configuration not reloaded: \(error.message)")
            core.notifier.ready(status: "serving; reload failed, old configuration kept: \(error.message)")
            throw error
        }
    }

    private func reloadConfiguration() throws(WireError) -> String {
        guard let configSource else {
            throw WireError(.invalidArgument, "this edmmd was started without a configuration file to reload")
        }
        let new: DaemonConfig
        let settings: DaemonSettings
        do {
            new = try configSource.load()
            settings = try DaemonSettings(new, epcTotalPages: core.backend.epcTotalPages)
        } catch {
            throw WireError(.invalidArgument, "old configuration kept: \(error)")
        }
        let changes = config.withLock { old in
            defer { old = new }
            return ConfigChanges(from: old, to: new)
        }
        core.replaceSettings(settings)
        for enclave in core.registry.all { enclave.apply(settings) }
        let supervisor = self.supervisor
        core.queue.async { supervisor.apply(settings) }
        return "\(configSource.description): \(changes.summary)"
    }

    /// A copy of every counter and every enclave's state, for metrics and status views.
    public func snapshot() -> DaemonSnapshot {
        let enclaves = core.registry.all.map(\.snapshot)
        return DaemonSnapshot(
            mode: core.backend.mode, modeReason: core.backend.reason, epcTotalPages: core.backend.epcTotalPages,
            committedPages: core.quotas.machinePages, epc: core.epcOccupancy(),
            underPressure: core.underPressure.load(ordering: .relaxed), connections: core.sessionCount,
            requestsTotal: core.counters.requestsTotal, requestsPerSecond: core.requestsPerSecond,
            counters: core.counters.named, enclaves: enclaves, requestFailures: core.counters.failures,
            quotas: QuotaLimits(core.settings.quota), lastReload: lastReload.withLock { $0 },
            fdStore: core.fdStore?.figures(enclaves: enclaves.count, machine: core.backend.storableDescriptor != nil),
            metrics: configuration.metrics, containers: core.quotas.containerFigures())
    }

    /// Every registered enclave's record (for systemd's FD store), each taken on its own queue.
    public func enclaveRecords() async -> [EnclaveRecord] {
        let records = Mutex<[EnclaveRecord]>([])
        _ = await Self.waitAll(core.registry.all) { enclave, done in
            enclave.record { record in
                if let record { records.withLock { $0.append(record) } }
                done()
            }
        }
        return records.withLock { $0 }.sorted { $0.handle < $1.handle }
    }

    /// Runs `body` for each item and waits until each called its completion, or `timeout` passed.
    /// Returns the items that had not completed by then.
    private static func waitAll<T: Sendable>(
        _ items: [T], timeout: Duration? = nil, _ body: (T, @escaping @Sendable () -> Void) -> Void
    ) async -> [T] {
        guard !items.isEmpty else { return [] }
        let pending = Mutex(Set(items.indices))
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            // Resumed once: by the last completion or by the timeout, whichever comes first; no
            // thread waits for either.
            let waiting = Mutex<CheckedContinuation<Void, Never>?>(continuation)
            let resume: @Sendable () -> Void = { waiting.withLock { $0.take() }?.resume() }
            if let timeout {
                DispatchQueue.global().asyncAfter(deadline: .now() + .microseconds(Int(timeout.microsecondsClamped)), execute: resume)
            }
            for (index, item) in items.enumerated() {
                body(item) {
                    if pending.withLock({ $0.remove(index) != nil && $0.isEmpty }) { resume() }
                }
            }
        }
        return pending.withLock { $0 }.sorted().map { items[$0] }
    }
}

/// The daemon's state at one moment: what a metrics exporter or a status view needs.
public struct DaemonSnapshot: Sendable {
    public var mode: WireDeviceKind
    public var modeReason: String
    public var epcTotalPages: UInt64
    /// Pages the ledgers hold (every enclave, lazy-free pools included).
    public var committedPages: UInt64
    /// The EPC's use as the device tells it (the figure pressure is judged by).
    public var epc: EPCOccupancy
    public var underPressure: Bool
    public var connections: Int
    public var requestsTotal: UInt64
    public var requestsPerSecond: Double
    /// Daemon-wide counters by name (requests by verb, connections, ioctls, reclaim ...).
    public var counters: [WireCounter]
    public var enclaves: [EnclaveSnapshot]
    /// Failed requests by verb and reason.
    public var requestFailures: [RequestFailureCount]
    public var quotas: QuotaLimits
    public var lastReload: ReloadRecord
    /// nil: the FD store is not in use.
    public var fdStore: FDStoreFigures?
    /// `[metrics]` in force (what the exposition shows may change on reload).
    public var metrics: DaemonConfig.Metrics
    /// Every Kubernetes container edmmd knows (registered or holding enclaves), in order.
    public var containers: [ContainerFigures]
}
