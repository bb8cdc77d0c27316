import CEDMMShims
import Dispatch
import EDMMCore
import EDMMProtocol
import EDMMSystem
import Glibc
import Logging
import SGXDevice
import Synchronization

/// The state every session and enclave shares: the device backend, the registry, the quota book,
/// counters, the live settings and the table of sessions. Each piece guards itself (a lock or
/// atomics), so it can be used from any queue; `queue` is the daemon's core queue, which owns the
/// listener and the supervisor.
final class DaemonCore: Sendable {
    let queue = DispatchQueue(label: "edmmd.core")
    let backend: any DeviceBackend
    let registry = EnclaveRegistry()
    let quotas = QuotaBook()
    let counters = DaemonCounters()
    let logger: Logger
    let logLevel: SharedLogLevel
    let notifier: any ServiceNotifier
    let faultInjection: FaultInjection?
    /// The service manager's FD store, when enabled: enclaves report registrations and changes.
    let fdStore: FDStoreKeeper?
    let runner = IoctlRunner()
    /// The event thread that reads every client socket.
    let socketLoop: SocketLoop
    let startedAt = MonotonicInstant.now
    /// Renders the Prometheus exposition for METRICS; nil until a metrics module provides one.
    let metricsText: (@Sendable (MetricsViewer) -> String)?
    /// The latency and batch-size histograms (no-ops unless a metrics module provides them).
    let instruments: DaemonInstruments
    /// Where HELLO finds a peer's pod and container (`[kubernetes] enabled`).
    let peerScopes: any PeerScopeSource
    let shuttingDown = Atomic<Bool>(false)
    let underPressure = Atomic<Bool>(false)
    /// The device's reclaim at its last sample (the supervisor's tick).
    let deviceReclaiming = Atomic<Bool>(false)
    private let settingsBox: Mutex<DaemonSettings>
    private let sessionsBox = Mutex<[UInt64: Session]>([:])
    private let nextSessionID = Atomic<UInt64>(1)
    private let rate = Mutex(RequestRate())
    /// Re-reads the configuration (RELOAD); set once by `Daemon`.
    private let reloader = Mutex<(@Sendable () throws(WireError) -> String)?>(nil)

    init(
        backend: any DeviceBackend, settings: DaemonSettings, logger: Logger, logLevel: SharedLogLevel,
        notifier: any ServiceNotifier, faultInjection: FaultInjection?, metricsText: (@Sendable (MetricsViewer) -> String)?,
        instruments: DaemonInstruments, socketLoop: SocketLoop, fdStore: FDStoreKeeper? = nil,
        peerScopes: any PeerScopeSource = CgroupPeerScopeSource()
    ) {
        self.socketLoop = socketLoop
        self.peerScopes = peerScopes
        self.backend = backend
        self.settingsBox = Mutex(settings)
        quotas.setDefaultContainerPages(settings.kubernetes.defaultContainerPages)
        self.logger = logger
        self.logLevel = logLevel
        self.notifier = notifier
        self.faultInjection = faultInjection
        self.metricsText = metricsText
        self.instruments = instruments
        self.fdStore = fdStore
    }

    var settings: DaemonSettings { settingsBox.withLock { $0 } }

    func replaceSettings(_ settings: DaemonSettings) {
        settingsBox.withLock { $0 = settings }
        quotas.setDefaultContainerPages(settings.kubernetes.defaultContainerPages)
        logLevel.value = settings.logLevel
    }

    var isShuttingDown: Bool { shuttingDown.load(ordering: .acquiring) }

    // MARK: Sessions

    /// A newly accepted connection (core queue): refused with a reason when the daemon is full or
    /// stopping, else served by a new session.
    func admit(_ fd: Int32) {
        guard let peer = PeerCredentials.of(socket: fd) else {
            logger.warning("cannot read the peer credentials of a new connection: \(ErrnoName.of(errno))")
            Glibc.close(fd)
            return
        }
        let limits = settings.connection
        let count = sessionsBox.withLock { $0.count }
        let refusal: WireError? =
            if isShuttingDown {
                WireError(.shuttingDown, "edmmd is shutting down")
            } else if count >= limits.maxConnections {
                WireError(
                    .tooManyConnections, "edmmd already serves \(count) connections, its limit",
                    detail: .limit(limit: UInt64(limits.maxConnections), actual: UInt64(count + 1)))
            } else {
                nil
            }
        if let refusal {
            let message = MessageCodec.encodeResponses([ResponseOperation(id: 0, verbCode: 0, outcome: .failure(refusal))])
            _ = SeqpacketIO.send(fd, message)
            Glibc.close(fd)
            counters.add(.connectionsRefused)
            logger.notice("connection refused", metadata: ["peer": "\(peer)", "reason": "\(refusal.message)"])
            return
        }
        let id = nextSessionID.wrappingAdd(1, ordering: .relaxed).oldValue
        let session = Session(id: id, fd: fd, peer: peer, limits: limits, core: self)
        sessionsBox.withLock { $0[id] = session }
        counters.add(.connectionsAccepted)
        logger.debug("connection accepted", metadata: ["session": "\(id)", "peer": "\(peer)"])
        session.start()
    }

    func removeSession(_ id: UInt64) {
        sessionsBox.withLock { _ = $0.removeValue(forKey: id) }
    }

    var sessions: [Session] { sessionsBox.withLock { Array($0.values) } }
    var sessionCount: Int { sessionsBox.withLock { $0.count } }

    /// A kernel enclave registered without knowing whether edmmd already manages it: kcmp(2)
    /// failed. Counted (STATUS `registrations_unchecked`), and said once in the log.
    func noteUncheckedRegistration(_ error: IdentityUnknown) {
        counters.add(.registrationsUnchecked)
        guard counters.value(.registrationsUnchecked) == 1 else { return }
        logger.warning(
            """
            cannot tell whether a REGISTER names an enclave edmmd already manages (\(error)); such registrations are accepted unchecked. \
            kcmp(2) needs CONFIG_KCMP and a seccomp filter that allows it (systemd's @system-service does)
            """
        )
    }

    // MARK: Reload

    func setReloader(_ reload: @escaping @Sendable () throws(WireError) -> String) {
        reloader.withLock { $0 = reload }
    }

    /// Re-reads the configuration (RELOAD); the summary of what changed.
    func reload() throws(WireError) -> String {
        guard let reload = reloader.withLock({ $0 }) else {
            throw WireError(.invalidArgument, "this edmmd was started without a configuration file to reload")
        }
        return try reload()
    }

    // MARK: Request rate

    struct RequestRate {
        var sampledAt = MonotonicInstant.now
        var requests: UInt64 = 0
        var perSecond = 0.0
    }

    /// Updates the request rate when at least a second passed since the last sample.
    func sampleRate(now: MonotonicInstant) -> Bool {
        let total = counters.requestsTotal
        return rate.withLock { rate in
            let elapsed = now.duration(since: rate.sampledAt)
            guard elapsed >= .seconds(1) else { return false }
            rate.perSecond = Double(total &- rate.requests) / elapsed.inSeconds
            rate.requests = total
            rate.sampledAt = now
            return true
        }
    }

    var requestsPerSecond: Double { rate.withLock { $0.perSecond } }
}
