import ArgumentParser
import EDMMClient
import Glibc

/// Connects to edmmd for one command and turns every failure into a message on standard error
/// and a meaningful exit status.
enum DaemonSession {
    static func connect(_ options: GlobalOptions) async throws -> EDMMConnection {
        do {
            return try await EDMMConnection.connect(socketPath: options.socketPath, clientName: "edmmctl")
        } catch {
            throw fail(error)
        }
    }

    /// Runs `body` on a fresh connection, reporting its failures the same way.
    static func with<T>(_ options: GlobalOptions, _ body: (EDMMConnection) async throws(EDMMClientError) -> T) async throws -> T {
        let connection = try await connect(options)
        defer { connection.close() }
        do {
            return try await body(connection)
        } catch {
            throw fail(error)
        }
    }

    static func fail(_ error: EDMMClientError) -> ExitCode {
        printError("edmmctl: \(error)")
        return ExitCode(exitStatus(error))
    }

    static func exitStatus(_ error: EDMMClientError) -> Int32 {
        switch error {
        case .socketMissing, .connectionRefused, .connectFailed, .daemonClosedConnection, .closedByClient, .sendFailed, .receiveFailed:
            69
        case .permissionDenied: 77
        case .protocolViolation, .incompatibleDaemon: 76
        case .daemon, .invalidRequest: 1
        }
    }

    static func printError(_ line: String) {
        let text = line + "\n"
        _ = text.utf8CString.withUnsafeBufferPointer { write(STDERR_FILENO, $0.baseAddress, $0.count - 1) }
    }
}
