import CEDMMShims
import EDMMSystem
import Glibc
import Synchronization

/// The edmmd of the running benchmark phase, killed by the signal handler if the bench is
/// interrupted (0: none).
let benchDaemonPID = Atomic<Int32>(0)

/// A real edmmd process (the `edmmd` executable beside this one) on its own simulated EPC, with its
/// socket, configuration and log in a private temporary directory. `stop()` ends it with SIGTERM
/// and removes the directory. Used from one task.
final class BenchDaemon {
    let pid: pid_t
    let directory: String
    let socketPath: String
    private var exitStatus: Int32?

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// `config` is the body of an edmmd.toml.
    init(config: String, epcBytes: UInt64) throws {
        let executable = Self.siblingExecutable("edmmd")
        guard access(executable, X_OK) == 0 else {
            throw Failure(description: "\(executable) not found: build edmmd too (swift build -c release)")
        }
        var template = Array("/tmp/edmm-bench-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw Failure(description: "mkdtemp: \(String(cString: strerror(errno)))") }
        directory = String(cString: made)
        socketPath = directory + "/edmmd.sock"
        let configPath = directory + "/edmmd.toml"
        let logPath = directory + "/edmmd.log"
        guard let file = fopen(configPath, "w") else { throw Failure(description: "cannot write \(configPath)") }
        fputs(config, file)
        fclose(file)
        let arguments = [
            executable, "--simulate", "--socket", socketPath, "--config", configPath, "--metrics", "", "--epc-size", "\(epcBytes >> 20)MiB",
            "--log-level", "warning",
        ]
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var child = pid_t()
        let rc = posix_spawn(&child, executable, &actions, nil, argv, environ)
        guard rc == 0 else {
            Self.removeDirectory(directory)
            throw Failure(description: "posix_spawn \(executable): \(String(cString: strerror(rc)))")
        }
        pid = child
        benchDaemonPID.store(child, ordering: .relaxed)
        guard waitUntilAccepting() else {
            let log = Self.read(logPath)
            stop()
            throw Failure(description: "edmmd did not start; its log: \(log.suffix(2000))")
        }
    }

    deinit { stop() }

    private func waitUntilAccepting() -> Bool {
        for _ in 0..<600 {
            let fd = socketPath.withCString { edmm_seqpacket_connect($0, 0) }
            if fd >= 0 {
                close(fd)
                return true
            }
            if reap(blocking: false) != nil { return false }
            usleep(20_000)
        }
        return false
    }

    /// CPU time (user + system, every thread) the daemon has used so far, in seconds.
    func cpuSeconds() -> Double { Self.cpuSeconds(pid: pid) }

    static func cpuSeconds(pid: pid_t) -> Double {
        // /proc/PID/stat: the command may hold spaces, so fields are counted after its ')'.
        let stat = read("/proc/\(pid)/stat")
        guard let close = stat.lastIndex(of: ")") else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command.
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// The daemon's memory, in KiB, from /proc/PID/status.
    struct Memory: Codable {
        var vmRssKib: UInt64
        var rssAnonKib: UInt64
        var rssFileKib: UInt64
        var rssShmemKib: UInt64
        var vmHwmKib: UInt64
    }

    func memory() -> Memory {
        var values: [String: UInt64] = [:]
        for line in Self.read("/proc/\(pid)/status").split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            values[String(parts[0])] = UInt64(parts[1].split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "")
        }
        return Memory(
            vmRssKib: values["VmRSS"] ?? 0, rssAnonKib: values["RssAnon"] ?? 0, rssFileKib: values["RssFile"] ?? 0,
            rssShmemKib: values["RssShmem"] ?? 0, vmHwmKib: values["VmHWM"] ?? 0)
    }

    /// SIGTERM (SIGKILL after 10 s), then removes the directory. Idempotent.
    func stop() {
        if exitStatus == nil {
            kill(pid, SIGTERM)
            for _ in 0..<500 where reap(blocking: false) == nil { usleep(20_000) }
            if exitStatus == nil {
                kill(pid, SIGKILL)
                reap(blocking: true)
            }
            benchDaemonPID.store(0, ordering: .relaxed)
        }
        Self.removeDirectory(directory)
    }

    @discardableResult
    private func reap(blocking: Bool) -> Int32? {
        if let exitStatus { return exitStatus }
        var status: Int32 = 0
        guard waitpid(pid, &status, blocking ? 0 : WNOHANG) == pid else { return nil }
        exitStatus = status
        return status
    }

    static func siblingExecutable(_ name: String) -> String {
        var path = Fleet.ownExecutable()
        while !path.isEmpty, !path.hasSuffix("/") { path.removeLast() }
        return path + name
    }

    static func read(_ path: String) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return "" }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = Glibc.read(fd, &chunk, chunk.count)
            guard n > 0 else { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func removeDirectory(_ path: String) {
        for name in directoryEntries(path) ?? [] { unlink(path + "/" + name) }
        rmdir(path)
    }
}
