import EDMMProtocol
import EDMMSystem
import Glibc

/// Everything that can go wrong between an enclave host and edmmd, as the client library sees it.
public enum EDMMClientError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Nothing exists at the socket path: edmmd is not running, or it listens elsewhere.
    case socketMissing(path: String)
    /// The path exists but nobody accepts on it (a stale socket file of a stopped daemon).
    case connectionRefused(path: String)
    /// The socket (or a directory on its path) does not let this user connect.
    case permissionDenied(path: String)
    /// Any other connect(2) failure.
    case connectFailed(path: String, errno: Int32)
    /// edmmd closed the connection (it stopped, or dropped this client).
    case daemonClosedConnection
    /// This side closed the connection while the request was outstanding.
    case closedByClient
    case sendFailed(errno: Int32)
    case receiveFailed(errno: Int32)
    /// edmmd sent something this library cannot accept: an undecodable message, a reply of the
    /// wrong shape, a message-level error that cannot be attributed to a request.
    case protocolViolation(String)
    /// The daemon speaks no protocol version this library speaks.
    case incompatibleDaemon(String)
    /// A request this library refuses to send: one that cannot fit the daemon's limits even
    /// alone in a message, fire-and-forget on a verb that must answer, REGISTER without a descriptor.
    case invalidRequest(String)
    /// The daemon answered the request with an error (quota with the numbers, kernel errno with
    /// count and result, invalid page state, ...).
    case daemon(WireError)

    /// Maps a failed connect(2) to the error a user can act on.
    public static func connecting(to path: String, errno code: Int32) -> EDMMClientError {
        switch code {
        case ENOENT, ENOTDIR: .socketMissing(path: path)
        case ECONNREFUSED: .connectionRefused(path: path)
        case EACCES, EPERM: .permissionDenied(path: path)
        default: .connectFailed(path: path, errno: code)
        }
    }

    /// The daemon's error, if the daemon reported one.
    public var wireError: WireError? {
        if case .daemon(let error) = self { return error }
        return nil
    }

    public var description: String {
        switch self {
        case .socketMissing(let path): "no edmmd socket at \(path) (is edmmd running? is --socket right?)"
        case .connectionRefused(let path): "connection refused at \(path): the socket exists but edmmd is not accepting (stopped?)"
        case .permissionDenied(let path): "permission denied connecting to \(path) (check the socket's group and mode)"
        case .connectFailed(let path, let code): "cannot connect to \(path): \(ErrnoName.described(code))"
        case .daemonClosedConnection: "edmmd closed the connection"
        case .closedByClient: "the connection was closed by this client"
        case .sendFailed(let code): "sending to edmmd failed: \(ErrnoName.described(code))"
        case .receiveFailed(let code): "receiving from edmmd failed: \(ErrnoName.described(code))"
        case .protocolViolation(let what): "protocol violation by edmmd: \(what)"
        case .incompatibleDaemon(let what): "incompatible edmmd: \(what)"
        case .invalidRequest(let what): "invalid request: \(what)"
        case .daemon(let error): "edmmd: \(error)"
        }
    }
}
