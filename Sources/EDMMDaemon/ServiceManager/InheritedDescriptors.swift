import EDMMSystem
import Glibc
import SGXDevice

/// What systemd handed this process at start (LISTEN_FDS / LISTEN_FDNAMES): the control socket
/// of edmmd.socket (socket activation), the listening socket of edmmd-metrics.socket, and what
/// the FD store kept from the previous run of the service.
public struct InheritedDescriptors: Sendable {
    /// The listening SOCK_SEQPACKET socket named `control`.
    public var control: Int32?
    /// The listening TCP socket named `metrics`, for the Prometheus endpoint.
    public var metrics: Int32?
    /// FD-store entries by name (`enclave-<handle>`, `machine`, `state.0`, `state.1`).
    public var stored: [String: Int32] = [:]
    /// What was wrong with what was passed, one log line each.
    public var problems: [String] = []

    public init(control: Int32? = nil, metrics: Int32? = nil, stored: [String: Int32] = [:]) {
        self.control = control
        self.metrics = metrics
        self.stored = stored
    }

    /// Takes the descriptors systemd passed to this process (none outside systemd). LISTEN_* is
    /// removed from the environment so that children do not see it.
    public static func fromSystemd() -> InheritedDescriptors {
        var inherited = InheritedDescriptors()
        switch SDDaemon.listenDescriptors() {
        case .failure(let error):
            inherited.problems.append("LISTEN_FDS is malformed (\(ErrnoName.of(error.errno))); ignoring it")
        case .success(let passed):
            for (fd, name) in passed { inherited.take(fd, name: name) }
        }
        return inherited
    }

    /// The path an AF_UNIX socket is bound to (for the log), or nil.
    public static func boundPath(of fd: Int32) -> String? {
        var address = sockaddr_un()
        var length = socklen_t(MemoryLayout<sockaddr_un>.size)
        let rc = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard rc == 0, address.sun_family == sa_family_t(AF_UNIX) else { return nil }
        let path = withUnsafeBytes(of: address.sun_path) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return path.isEmpty ? nil : path
    }

    mutating func take(_ fd: Int32, name: String) {
        switch name {
        case "control":
            if control == nil, SDDaemon.isListeningUnixSocket(fd, type: Int32(SOCK_SEQPACKET.rawValue)) {
                control = fd
            } else {
                problems.append("descriptor \(fd) named control is not a (single) listening SOCK_SEQPACKET socket; closed it")
                close(fd)
            }
        case "metrics":
            if metrics == nil {
                metrics = fd
            } else {
                problems.append("a second descriptor named metrics (\(fd)); closed it")
                close(fd)
            }
        default:
            if let earlier = stored[name] {
                problems.append("two stored descriptors named \(name); kept the first")
                close(fd)
                stored[name] = earlier
            } else {
                stored[name] = fd
            }
        }
    }
}
