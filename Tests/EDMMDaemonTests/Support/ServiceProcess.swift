import Glibc

/// An `edmmd` process started the way systemd starts a service: with descriptors at 3, 4, ...
/// named by LISTEN_FDS/LISTEN_FDNAMES (socket activation and the FD store), LISTEN_PID its own
/// pid, and NOTIFY_SOCKET. A shell sets LISTEN_PID to its own pid and execs edmmd, which keeps it.
final class ServiceProcess {
    let pid: pid_t
    private let errorOutput: Int32
    private(set) var exitStatus: Int32?

    init(_ arguments: [String], passing descriptors: [(name: String, fd: Int32)] = [], notifySocket: String?, environment: [String] = [])
        throws
    {
        // The default metrics address (127.0.0.1:9464) is one per machine; tests run in parallel.
        let arguments = arguments.contains("--metrics") ? arguments : arguments + ["--metrics", ""]
        let path = ChildProcess.productPath("edmmd")
        guard access(path, X_OK) == 0 else { throw TestClient.Failure.unexpected("\(path) not found: run swift build first") }
        var pipeEnds: [Int32] = [0, 0]
        guard pipe(&pipeEnds) == 0 else { throw TestClient.Failure.system("pipe", errno) }
        _ = fcntl(pipeEnds[0], F_SETFD, FD_CLOEXEC)
        // Move the descriptors out of the way of 3, 4, ... first, so that no dup2 overwrites one
        // that is still to be placed.
        let parked = descriptors.map { fcntl($0.fd, F_DUPFD_CLOEXEC, 100) }
        defer { parked.forEach { close($0) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], 2)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        for (index, fd) in parked.enumerated() { posix_spawn_file_actions_adddup2(&actions, fd, Int32(3 + index)) }
        let script = #"LISTEN_PID=$$ exec "$0" "$@""#
        var argv: [UnsafeMutablePointer<CChar>?] = (["/bin/sh", "-c", script, path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var variables = ["SWIFT_BACKTRACE=enable=no", "PATH=/usr/bin:/bin"] + environment
        if let notifySocket { variables.append("NOTIFY_SOCKET=\(notifySocket)") }
        if !descriptors.isEmpty {
            variables += ["LISTEN_FDS=\(descriptors.count)", "LISTEN_FDNAMES=\(descriptors.map(\.name).joined(separator: ":"))"]
        }
        var envp: [UnsafeMutablePointer<CChar>?] = variables.map { strdup($0) } + [nil]
        defer { envp.forEach { free($0) } }
        var child = pid_t()
        let rc = posix_spawn(&child, "/bin/sh", &actions, nil, &argv, &envp)
        close(pipeEnds[1])
        guard rc == 0 else {
            close(pipeEnds[0])
            throw TestClient.Failure.system("posix_spawn", rc)
        }
        pid = child
        errorOutput = pipeEnds[0]
    }

    deinit {
        if exitStatus == nil {
            kill(pid, SIGKILL)
            _ = wait()
        }
        close(errorOutput)
    }

    func signal(_ signal: Int32) { kill(pid, signal) }

    /// The process's state letter in /proc/<pid>/stat ("T" once SIGSTOP took effect).
    var state: Character? {
        let fd = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = read(fd, &buffer, buffer.count)
        guard n > 0, let paren = buffer[..<n].lastIndex(of: UInt8(ascii: ")")), paren + 2 < n else { return nil }
        return Character(Unicode.Scalar(buffer[paren + 2]))
    }

    /// Waits for the process to end; its exit status (128 + signal if killed).
    @discardableResult
    func wait() -> Int32 {
        if let exitStatus { return exitStatus }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let code = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        exitStatus = code
        return code
    }

    /// Everything the process wrote to standard error (call after `wait`).
    func standardError() -> String {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(errorOutput, &chunk, chunk.count)
            guard n > 0 else { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
