import ArgumentParser
import EDMMClient
import EDMMSystem
import Glibc

/// Connects to edmmd for one command and turns every failure into a message on standard error
/// (one JSON object with --json) and a meaningful exit status.
enum DaemonSession {
    static func connect(_ options: GlobalOptions) async throws -> EDMMConnection {
        do {
            return try await EDMMConnection.connect(socketPath: options.socketPath, clientName: "edmmctl")
        } catch {
            throw fail(error, json: options.json)
        }
    }

    /// Runs `body` on a fresh connection, reporting its failures the same way.
    static func with<T>(_ options: GlobalOptions, _ body: (EDMMConnection) async throws(EDMMClientError) -> T) async throws -> T {
        let connection = try await connect(options)
        defer { connection.close() }
        do {
            return try await body(connection)
        } catch {
            throw fail(error, json: options.json)
        }
    }

    static func fail(_ error: EDMMClientError, json: Bool) -> ExitCode {
        let status = exitStatus(error)
        if json {
            var code: String?
            if case .daemon(let wire) = error { code = "\(wire.code)" }
            printJSONError(message: "\(error)", exitStatus: status, code: code, hint: hint(error))
        } else {
            printError("edmmctl: \(error)")
            if let hint = hint(error) { printError("edmmctl: \(hint)") }
        }
        return ExitCode(status)
    }

    /// An error under --json: `{"error": {"message", "exit_status", "code"?, "hint"?}}` on one
    /// line of standard error (`code`: edmmd's error code, e.g. "not-admin").
    static func printJSONError(message: String, exitStatus: Int32, code: String? = nil, hint: String? = nil) {
        struct Failure: Encodable {
            struct Detail: Encodable {
                var message: String
                var exitStatus: Int32
                var code: String?
                var hint: String?
            }
            var error: Detail
        }
        printError(jsonText(Failure(error: .init(message: message, exitStatus: exitStatus, code: code, hint: hint))))
    }

    /// What to do next, for the failures a newcomer meets first.
    static func hint(_ error: EDMMClientError) -> String? {
        switch error {
        case .socketMissing, .connectionRefused:
            "start it (systemctl start edmmd, or edmmd --simulate for a test), or point --socket / $EDMMD_SOCKET at its socket"
        case .permissionDenied:
            "the socket's group and mode decide who may connect ([daemon] socket_group); run as a member of that group or as root"
        case .daemon(let error) where error.code == .notAdmin:
            "run as root or as a member of edmmd's admin group ([daemon] admin_group)"
        default: nil
        }
    }

    static func exitStatus(_ error: EDMMClientError) -> Int32 {
        switch error {
        case .socketMissing, .connectionRefused, .connectFailed, .daemonClosedConnection, .closedByClient, .sendFailed, .receiveFailed:
            69
        case .permissionDenied: 77
        case .protocolViolation, .incompatibleDaemon: 76
        case .daemon(let error) where error.code == .notAdmin || error.code == .notOwner: 77
        case .daemon, .invalidRequest: 1
        }
    }
}
