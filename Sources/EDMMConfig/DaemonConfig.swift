/// Where edmmd runs enclave ioctls.
public enum DeviceMode: String, Sendable, CaseIterable {
    /// The kernel device when `/dev/sgx_enclave` exists and SGX2 works, the simulated EPC otherwise.
    case auto
    /// The kernel device; start-up fails without SGX2.
    case kernel
    /// The simulated EPC even where SGX2 exists.
    case simulated
}

public enum LogLevel: String, Sendable, CaseIterable {
    case trace, debug, info, notice, warning, error, critical
}

/// The daemon's whole configuration. Every field has a default; the file sets any subset; command
/// line flags override the file (see `edmmd --help`). `config/edmmd.toml` documents every key.
public struct DaemonConfig: Equatable, Sendable {
    public struct Daemon: Equatable, Sendable {
        public var socket = "/run/edmmd/control.sock"
        /// Mode of the socket file when edmmd binds it itself (socket activation sets its own).
        public var socketMode: UInt32 = 0o660
        /// Group of the socket file when edmmd binds it itself; nil keeps the daemon's group.
        public var socketGroup: String? = nil
        /// Members of this group (and root) may use the admin verbs RECLAIM and RELOAD.
        public var adminGroup: String? = nil
        public var device: DeviceMode = .auto
        public var logLevel: LogLevel = .info
    }

    public struct Simulator: Equatable, Sendable {
        /// Size of the simulated machine's EPC.
        public var epcBytes: UInt64 = 128 << 20
        /// Simulated enclaves the machine can hold at once.
        public var maxEnclaves = 4_096
        /// Transient failures the simulated EPC injects (docs/simulator.md, "Fault injection").
        public var faults = Faults()
    }

    /// The chance (0...1) that each opportunity of a kind of fault fails, and the seed that
    /// decides which; all 0 injects nothing.
    public struct Faults: Equatable, Sendable {
        /// An SGX2 ioctl finds a page being reclaimed: EAGAIN mid-range.
        public var loadBusy = 0.0
        /// The reclaimer holds a page: EAGAIN on MODIFY_TYPES REG->TCS, EBUSY on REMOVE_PAGES.
        public var reclaimerHoldsPage = 0.0
        /// EAUG on a fault fails: SIGBUS, a not-present #PF inside the enclave.
        public var eaugFailure = 0.0
        /// EMODPR/EMODT meet another SGX instruction on the page: EFAULT with result 7.
        public var pageConflict = 0.0
        public var seed: UInt64 = 1

        public init() {}
    }

    public struct Batch: Equatable, Sendable {
        /// false: every request becomes its own ioctls immediately (the `--no-batch` baseline).
        public var enabled = true
        /// A batch window closes this long after its first request.
        public var windowMicros: UInt64 = 500
        /// ... or as soon as this many pages are queued.
        public var maxPages: UInt64 = 4_096
    }

    public struct Pool: Equatable, Sendable {
        /// false: FREE trims at once (no lazy-free pool).
        public var enabled = true
        /// Reclaim an enclave's pool when it exceeds this percentage of its committed pages.
        public var thresholdPercent = 25
    }

    public struct Pressure: Equatable, Sendable {
        /// Machine-wide EPC use (percent of total) at which pool reclaim starts.
        public var highWatermarkPercent = 90
        /// ... and the use it reclaims down to.
        public var lowWatermarkPercent = 75
        public var checkIntervalMillis: UInt64 = 100
    }

    public struct Growth: Equatable, Sendable {
        /// Let ALLOCATE grant larger contiguous chunks than asked, when the client allows it.
        public var enabled = true
        public var minChunkPages: UInt64 = 16
        public var maxChunkPages: UInt64 = 1_024
        /// Pages granted beyond the asked ones, at most this percentage of what the enclave holds.
        public var heldPercent: UInt64 = 6
    }

    public struct Quota: Equatable, Sendable {
        /// nil: unlimited.
        public var enclaveBytes: UInt64? = nil
        public var uidBytes: UInt64? = nil
        /// nil: the EPC size (the machine cannot hold more anyway).
        public var machineBytes: UInt64? = nil
        /// Per-uid limits that replace `uidBytes` for those uids.
        public var uidOverrides: [UInt32: UInt64] = [:]
        /// Largest preheat grant a REGISTER may ask for.
        public var maxPreheatBytes: UInt64 = 64 << 20
    }

    public struct Limits: Equatable, Sendable {
        public var maxMessageBytes = 65_536
        public var maxOperationsPerMessage = 256
        public var maxInFlightRequests = 4_096
        public var maxEnclavesPerConnection = 64
        public var maxConnections = 1_024
        /// Replies queued for a client that does not read them; beyond this it is disconnected.
        public var replyQueueBytes = 4 << 20
        /// A connection must send HELLO within this time.
        public var helloTimeoutMillis: UInt64 = 5_000
    }

    public struct Metrics: Equatable, Sendable {
        /// `HOST:PORT` of the Prometheus endpoint; nil disables it.
        public var listen: String? = "127.0.0.1:9464"
        /// Export the series of each enclave; false: machine-wide, per-uid and per-container series
        /// only. Unless the file says, false with `[kubernetes] enabled`.
        public var perEnclave = true
        /// What the `enclave` label of per-enclave series shows.
        public var enclaveLabels = EnclaveLabels.label
    }

    /// Enclave labels are chosen by clients and may say more than their owners want every local
    /// user to read (/metrics has no authentication).
    public enum EnclaveLabels: String, CaseIterable, Equatable, Sendable {
        /// The label the client registered.
        case label
        /// A 16-hex-digit hash of the label: stable across restarts and hosts, but anyone who can
        /// guess a label can confirm it.
        case hash
        /// The enclave's handle (the id edmmctl shows): nothing the client chose.
        case none
    }

    /// Kubernetes mode (docs/kubernetes.md): clients in pods are told apart by their pod and
    /// container, not their uid.
    public struct Kubernetes: Equatable, Sendable {
        public var enabled = false
        /// The quota of a container whose container and pod have no quota of their own (no
        /// SET_SCOPE, e.g. no NRI hook ran for it). nil: unlimited; 0 (the default): it may
        /// register enclaves but commit no EPC through edmmd.
        public var defaultContainerBytes: UInt64? = 0
    }

    public struct Systemd: Equatable, Sendable {
        /// Send WATCHDOG=1 when the service has WatchdogSec= set.
        public var watchdog = true
        /// Keep enclave descriptors in systemd's FD store so a restart keeps registrations.
        public var fdStore = true
    }

    public var daemon = Daemon()
    public var simulator = Simulator()
    public var batch = Batch()
    public var pool = Pool()
    public var pressure = Pressure()
    public var growth = Growth()
    public var quota = Quota()
    public var limits = Limits()
    public var metrics = Metrics()
    public var systemd = Systemd()
    public var kubernetes = Kubernetes()

    public init() {}
}
