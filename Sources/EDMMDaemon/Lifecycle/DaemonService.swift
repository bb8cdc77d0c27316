import Logging
import ServiceLifecycle
import UnixSignals

/// The daemon as a swift-service-lifecycle `Service`: starts it, reloads the configuration on
/// SIGHUP, and on graceful shutdown (SIGTERM/SIGINT, handled by the ServiceGroup) drains it.
/// The Dispatch core does the work; this is only the outer shell.
public struct DaemonService: Service {
    public let daemon: Daemon

    public init(daemon: Daemon) {
        self.daemon = daemon
    }

    public func run() async throws {
        try daemon.start()
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        for await _ in hangups.cancelOnGracefulShutdown() {
            _ = try? daemon.reload()  // logged, and the old configuration kept
        }
        // With the FD store, a stop may be a restart: clients are told to reconnect and ATTACH
        // (if it was a stop, systemd drops the store and the next daemon does not know them).
        await daemon.shutdown(restarting: daemon.keepsRegistrationsAcrossRestart)
    }
}
