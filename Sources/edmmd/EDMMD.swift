import ArgumentParser
import EDMMBuildInfo
import EDMMConfig
import EDMMDaemon
import EDMMMetrics
import EDMMSystem
import Glibc
import Logging
import ServiceLifecycle

@main
struct EDMMD: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edmmd",
        abstract: "Manage SGX2 enclave memory (EPC) for every enclave on this host.",
        discussion: """
            Enclave hosts connect to the control socket (AF_UNIX, SOCK_SEQPACKET), register their \
            /dev/sgx_enclave descriptors, and ask edmmd to allocate, free, trim, restrict, relax or \
            convert pages. edmmd runs the kernel's EDMM ioctls for them on one serial queue per \
            enclave, batches trims and removals across clients, keeps a lazy-free pool, enforces \
            quotas and reclaims idle pools under EPC pressure.

            Without usable SGX2 (or with --simulate) edmmd runs on a simulated EPC in shared \
            memory, and hands it to every client in the HELLO reply. The start-up log and every \
            STATUS say which device is used and why.

            Flags override the configuration file. SIGHUP (systemctl reload) re-reads the file and \
            applies what can change at run time; SIGTERM or SIGINT stop accepting, finish queued \
            work, notify clients and exit 0.

            EXIT STATUS
              0  stopped by SIGTERM or SIGINT after draining;
                 --check-config found no problem
              1  the configuration is invalid (each problem with file:line)
              2  bad command line
              3  edmmd could not start (socket in use, no SGX2 with
                 device = "kernel", ...)

            FILES
              /etc/edmmd/edmmd.toml     configuration (see config/edmmd.toml)
              /run/edmmd/control.sock   default control socket
            """,
        version: BuildInfo.versionLine(of: "edmmd"))

    @Option(name: .long, help: ArgumentHelp("Configuration file. Without this flag, a missing /etc/edmmd/edmmd.toml means the defaults.", valueName: "file"))
    var config: String?

    @Option(name: .long, help: ArgumentHelp("Validate a configuration file, print every problem with file:line, and exit 0 or 1.", valueName: "file"))
    var checkConfig: String?

    @Option(name: .long, help: ArgumentHelp("The control socket (overrides [daemon] socket).", valueName: "path"))
    var socket: String?

    @Flag(name: .long, help: "Use the simulated EPC even where /dev/sgx_enclave supports SGX2.")
    var simulate = false

    @Flag(name: .long, help: "Run every request as its own ioctls at once: the baseline for the batching claims.")
    var noBatch = false

    @Option(name: .long, help: ArgumentHelp("Size of the simulated EPC, e.g. 64MiB (overrides [simulator] epc_size).", valueName: "size"))
    var epcSize: String?

    @Option(name: .long, help: ArgumentHelp("Prometheus endpoint HOST:PORT, \"\" to disable (overrides [metrics] listen).", valueName: "host:port"))
    var metrics: String?

    @Option(name: .long, help: ArgumentHelp("trace, debug, info, notice, warning, error or critical (overrides [daemon] log_level).", valueName: "level"))
    var logLevel: String?

    mutating func run() async throws {
        if let checkConfig {
            do throws(ConfigErrors) {
                let config = try DaemonConfig.load(path: checkConfig)
                _ = config
                print("\(checkConfig): OK")
                return
            } catch {
                for problem in error.errors { printError(problem.description) }
                throw ExitCode(1)
            }
        }
        let source: ConfigSource
        let config: DaemonConfig
        do throws(ConfigErrors) {
            let overrides = try ConfigOverrides.validated(
                socket: socket, simulate: simulate, noBatch: noBatch, epcSize: epcSize, metrics: metrics, logLevel: logLevel)
            source = ConfigSource(path: self.config ?? ConfigSource.defaultPath, explicit: self.config != nil, overrides: overrides)
            config = try source.load()
        } catch {
            for problem in error.errors { printError(problem.description) }
            throw ExitCode(1)
        }
        signal(SIGPIPE, SIG_IGN)
        let level = SharedLogLevel(.info)
        let logger = Logger(label: "edmmd") { label in StandardErrorLogHandler(label: label, level: level) }
        let exporter = MetricsExporter()
        var options = DaemonOptions(logger: logger, logLevel: level)
        options.configSource = source
        options.instruments = exporter.instruments
        options.metricsText = { exporter.renderText() }
        let inheritedMetrics = Self.useServiceManager(&options, config: config, logger: logger)
        let testFaults: TestFaults?
        do {
            testFaults = try TestFaults.fromEnvironment(logger: logger)
        } catch {
            printError("edmmd: \(error)")
            throw ExitCode(2)
        }
        options.faultInjection = testFaults?.injection
        let daemon: Daemon
        do {
            daemon = try Daemon(config: config, options: options)
        } catch {
            printError("edmmd: \(error)")
            throw ExitCode(3)
        }
        exporter.attach(daemon)
        logger.info("\(BuildInfo.versionLine(of: "edmmd")), configuration: \(source.description)")
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: DaemonService(daemon: daemon))]
        // edmmd-metrics.socket's descriptor, when systemd passed one, else [metrics] listen.
        if let listener = inheritedMetrics.map(MetricsListener.inherited) ?? config.metrics.listen.flatMap(MetricsListener.init) {
            do {
                services.append(.init(service: try await MetricsEndpoint.start(listener, logger: logger) { exporter.render() }))
            } catch {
                printError("edmmd: \(error)")
                throw ExitCode(3)
            }
        }
        let group = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch let error as StartupError {
            printError("edmmd: \(error)")
            throw ExitCode(3)
        }
        withExtendedLifetime(testFaults) {}  // its SIGUSR2 source must live until the daemon stops
    }

    /// What systemd offers, when it started us: notifications, the control socket of socket
    /// activation, and the FD store with what the previous run kept. Said once in the log either
    /// way. Returns the metrics socket systemd passed (edmmd-metrics.socket), if any.
    private static func useServiceManager(_ options: inout DaemonOptions, config: DaemonConfig, logger: Logger) -> Int32? {
        let inherited = InheritedDescriptors.fromSystemd()
        for problem in inherited.problems { logger.warning("\(problem)") }
        if let control = inherited.control {
            options.listener = .inherited(fd: control, path: InheritedDescriptors.boundPath(of: control))
            logger.info("socket activation: serving the control socket systemd passed")
        }
        options.storedDescriptors = inherited.stored
        guard SystemdNotifier.isAvailable else {
            logger.notice(
                "not started by systemd (no NOTIFY_SOCKET): no readiness, status or watchdog notifications, and no FD store (a restart loses every registration)")
            return inherited.metrics
        }
        let notifier = SystemdNotifier(pingWatchdog: config.systemd.watchdog)
        options.notifier = notifier
        // systemd >= 254 says how many descriptors the unit may store (FileDescriptorStoreMax=).
        let storeLimit = getenv("FDSTORE").map { String(cString: $0) }
        let fdStore: String
        if !config.systemd.fdStore {
            fdStore = "off ([systemd] fd_store = false)"
        } else if storeLimit == "0" {
            fdStore = "off (the unit has no FileDescriptorStoreMax=)"
        } else {
            options.descriptorStore = SystemdDescriptorStore()
            fdStore = "on"
        }
        let watchdog = notifier.watchdogInterval.map { "WATCHDOG=1 every \($0)" } ?? "no watchdog"
        logger.info("systemd: Type=notify readiness and status, \(watchdog), FD store \(fdStore)")
        if let interval = notifier.watchdogInterval, Duration.milliseconds(config.pressure.checkIntervalMillis) > interval {
            logger.warning("[pressure] check_interval_ms is longer than half of WatchdogSec=: the watchdog will fire")
        }
        return inherited.metrics
    }
}

