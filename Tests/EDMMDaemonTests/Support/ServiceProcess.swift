import Glibc

/// An `edmmd` process started the way systemd starts a service: with descriptors at 3, 4, ...
/// named by LISTEN_FDS/LISTEN_FDNAMES (socket activation and the FD store), LISTEN_PID its own
/// pid, and NOTIFY_SOCKET. A shell sets LISTEN_PID to its own pid and execs edmmd, which keeps it.
typealias ServiceProcess = ChildProcess

extension ChildProcess {
    convenience init(
        _ arguments: [String], passing descriptors: [(name: String, fd: Int32)] = [], notifySocket: String?, environment: [String] = []
    ) throws {
        // The default metrics address (127.0.0.1:9464) is one per machine; tests run in parallel.
        let arguments = arguments.contains("--metrics") ? arguments : arguments + ["--metrics", ""]
        let path = ChildProcess.productPath("edmmd")
        var variables = ["SWIFT_BACKTRACE=enable=no", "PATH=/usr/bin:/bin"] + environment
        if let notifySocket { variables.append("NOTIFY_SOCKET=\(notifySocket)") }
        if !descriptors.isEmpty {
            variables += ["LISTEN_FDS=\(descriptors.count)", "LISTEN_FDNAMES=\(descriptors.map(\.name).joined(separator: ":"))"]
        }
        let script = #"LISTEN_PID=$$ exec "$0" "$@""#
        try self.init(
            spawning: "/bin/sh", argv: ["/bin/sh", "-c", script, path] + arguments, environment: variables,
            descriptors: descriptors.map(\.fd), checking: path)
    }
}
