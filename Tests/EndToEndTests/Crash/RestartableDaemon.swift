import CEDMMShims
import Glibc

/// An edmmd process on the simulated EPC at a socket path that stays the same across restarts,
/// so that its clients can reconnect: `kill()` it with SIGKILL, `start()` another. Without
/// systemd there is no FD store: each process starts with a simulated EPC of its own.
final class RestartableDaemon: @unchecked Sendable {
    // Used by one test at a time.
    let directory: TemporaryDirectory
    let socketPath: String
    private let configPath: String
    private(set) var process: Spawned?
    private var starts = 0

    init(config: String) throws {
        directory = try TemporaryDirectory()
        socketPath = directory.path + "/edmmd.sock"
        configPath = directory.path + "/edmmd.toml"
        let file = fopen(configPath, "w")
        fputs(config, file)
        fclose(file)
        try start()
    }

    deinit {
        process?.signal(SIGKILL)
        process?.wait()
        directory.remove()
    }

    var pid: pid_t { process?.pid ?? 0 }

    func start() throws {
        starts += 1
        let log = directory.path + "/edmmd.\(starts).log"
        let process = try Spawned(
            try Products.path("edmmd"),
            ["--simulate", "--socket", socketPath, "--config", configPath, "--metrics", "", "--epc-size", "64MiB"], stderrPath: log)
        self.process = process
        for _ in 0..<600 {
            let fd = edmm_seqpacket_connect(socketPath, 0)
            if fd >= 0 {
                close(fd)
                return
            }
            if process.exitStatus != nil { break }
            usleep(50_000)
        }
        process.signal(SIGKILL)
        throw SpawnFailure.timedOut("edmmd did not accept on \(socketPath): \(readFile(log) ?? "")")
    }

    /// SIGKILL, and the process reaped.
    func kill() {
        process?.signal(SIGKILL)
        process?.wait()
        process = nil
    }

    /// SIGTERM; the exit status.
    func stop() -> Int32 {
        defer { process = nil }
        process?.signal(SIGTERM)
        return process?.wait() ?? -1
    }

    /// Descriptors the daemon holds open now.
    func openDescriptors() -> Int {
        guard let dir = opendir("/proc/\(pid)/fd") else { return -1 }
        defer { closedir(dir) }
        var count = 0
        while readdir(dir) != nil { count += 1 }
        return count - 2
    }
}
