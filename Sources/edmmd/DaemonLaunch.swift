import ArgumentParser
import EDMMBuildInfo
import EDMMConfig
import EDMMDaemon
import EDMMMetrics
import EDMMSystem
import Glibc
import Logging
import ServiceLifecycle

/// edmmd assembled from a valid configuration: the logger, the Prometheus exporter, what the
/// service manager offers, the daemon, and the service group that runs it until SIGTERM or
/// SIGINT. Failures exit with the status `--help` documents.
struct DaemonLaunch {
    let source: ConfigSource
    let config: DaemonConfig

    /// `--check-config`: every problem of the file with its file:line, then exit 0 or 1.
    static func checkConfig(_ path: String) throws {
        do throws(ConfigErrors) {
            _ = try DaemonConfig.load(path: path)
            print("\(path): OK")
        } catch {
            for problem in error.errors { printError(problem.description) }
            throw ExitCode(1)
        }
    }

    /// The configuration file (`configPath`, or the default one, which may be missing) with the
    /// command-line flags on top; exit 1 with every problem of either.
    init(configPath: String?, overrides: () throws(ConfigErrors) -> ConfigOverrides) throws {
        do throws(ConfigErrors) {
            source = ConfigSource(path: configPath ?? ConfigSource.defaultPath, explicit: configPath != nil, overrides: try overrides())
            config = try source.load()
        } catch {
            for problem in error.errors { printError(problem.description) }
            throw ExitCode(1)
        }
    }

    func run() async throws {
        signal(SIGPIPE, SIG_IGN)
        let level = SharedLogLevel(.info)
        let destination = LogDestination.detect()
        let logger = Logger(label: "edmmd") { label in StandardErrorLogHandler(label: label, level: level, destination: destination) }
        let exporter = MetricsExporter(version: BuildInfo.version, revision: BuildInfo.commit)
        var options = DaemonOptions(logger: logger, logLevel: level)
        options.configSource = source
        options.instruments = exporter.instruments
        options.metricsText = { viewer in exporter.renderText(for: viewer) }
        let inheritedMetrics = options.useServiceManager(config: config)
        let testFaults: TestFaults?
        do {
            testFaults = try TestFaults.fromEnvironment(logger: logger)
        } catch {
            printError("edmmd: \(error)")
            throw ExitCode(64)
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
}
