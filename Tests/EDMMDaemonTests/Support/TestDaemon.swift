import EDMMConfig
import EDMMDaemon
import EDMMProtocol
import Glibc
import Logging
import SGXSimulator

/// An edmmd running in the test process on the simulated EPC, on a socket in a fresh temporary
/// directory. `stop()` shuts it down and removes the directory.
final class TestDaemon: @unchecked Sendable {
    let daemon: Daemon
    let directory: String
    let socketPath: String
    let configPath: String

    /// `configure` adjusts the defaults (simulated device, a 16 MiB EPC, warnings only in the log).
    init(
        _ configure: (inout DaemonConfig) -> Void = { _ in }, faultInjection: FaultInjection? = nil,
        notifier: any ServiceNotifier = SilentServiceNotifier(), metricsText: (@Sendable (MetricsViewer) -> String)? = nil,
        options adjust: (inout DaemonOptions) -> Void = { _ in }
    ) throws {
        var template = Array("/tmp/edmmd-test-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw TestClient.Failure.system("mkdtemp", errno) }
        directory = String(cString: made)
        chmod(directory, 0o755)
        socketPath = directory + "/ctl.sock"
        configPath = directory + "/edmmd.toml"
        var config = DaemonConfig()
        config.daemon.socket = socketPath
        config.daemon.device = .simulated
        config.daemon.logLevel = .warning
        config.simulator.epcBytes = 16 << 20
        config.simulator.maxEnclaves = 256
        configure(&config)
        let level = SharedLogLevel(.warning)
        var options = DaemonOptions(
            logger: Logger(label: "edmmd-test") { StandardErrorLogHandler(label: $0, level: level) }, logLevel: level)
        options.faultInjection = faultInjection
        options.notifier = notifier
        options.metricsText = metricsText
        options.configSource = ConfigSource(path: configPath, explicit: false)
        adjust(&options)
        daemon = try Daemon(config: config, options: options)
        try daemon.start()
    }

    /// A connection that said HELLO, and the simulated machine it was handed.
    func connect(name: String = "daemon-tests") throws -> TestClient {
        let client = try TestClient(path: socketPath)
        try client.hello(name: name)
        return client
    }

    /// The simulated machine, opened from the descriptor HELLO handed to `client`, as a client does.
    func machine(from client: TestClient) throws -> SimulatedMachine {
        guard let fd = client.receivedDescriptors.last else { throw TestClient.Failure.unexpected("no machine descriptor") }
        return try SimulatedMachine.open(fd: fd)
    }

    func stop() async {
        await daemon.shutdown(drainTimeout: .seconds(2))
        unlink(configPath)
        unlink(socketPath)
        rmdir(directory)
    }

    /// Writes the configuration file RELOAD reads.
    func writeConfig(_ text: String) throws {
        let fd = open(configPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TestClient.Failure.system("open \(configPath)", errno) }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard write(fd, bytes, bytes.count) == bytes.count else { throw TestClient.Failure.system("write", errno) }
    }
}

/// Waits until `condition` holds, checking every few milliseconds, for at most `timeout`.
/// Returns whether it held (tests then `#expect` it).
func eventually(timeout: Duration = .seconds(10), _ condition: () throws -> Bool) rethrows -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: timeout)
    while clock.now < deadline {
        if try condition() { return true }
        usleep(2_000)
    }
    return try condition()
}

/// Runs `body` against a fresh in-process daemon and always stops it afterwards.
func withDaemon(
    _ configure: (inout DaemonConfig) -> Void = { _ in }, faultInjection: FaultInjection? = nil,
    notifier: any ServiceNotifier = SilentServiceNotifier(), metricsText: (@Sendable (MetricsViewer) -> String)? = nil,
    options: (inout DaemonOptions) -> Void = { _ in }, _ body: (TestDaemon) async throws -> Void
) async throws {
    let daemon = try TestDaemon(configure, faultInjection: faultInjection, notifier: notifier, metricsText: metricsText, options: options)
    do {
        try await body(daemon)
    } catch {
        await daemon.stop()
        throw error
    }
    await daemon.stop()
}
