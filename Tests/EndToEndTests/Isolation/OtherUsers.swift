import CEDMMShims
import EDMMSystem
import FoundationEssentials
import Glibc

/// Who a child process runs as. `setpriv` (util-linux) switches the credentials and then execs
/// the program, so the program never runs as root.
struct Credentials: CustomStringConvertible {
    var uid: UInt32
    var gid: UInt32
    /// Supplementary groups; empty clears them.
    var groups: [UInt32] = []

    static let setprivPath = "/usr/bin/setpriv"

    var setprivArguments: [String] {
        [
            "--reuid=\(uid)", "--regid=\(gid)",
            groups.isEmpty ? "--clear-groups" : "--groups=" + groups.map(String.init).joined(separator: ","), "--",
        ]
    }

    var description: String { "uid \(uid) gid \(gid)" + (groups.isEmpty ? "" : " groups \(groups)") }
}

struct ConnectionRefused: Error, CustomStringConvertible {
    let description: String
}

/// A copy of the `edmm-sim` product in `directory` (which must be open to everyone): the build
/// folder may lie under a home directory that other users cannot enter. Its RUNPATH names the
/// toolchain's runtime, which everyone can read.
func edmmSimForAnyone(in directory: String) throws -> String {
    let copy = directory + "/edmm-sim"
    if access(copy, X_OK) == 0 { return copy }
    let source = open(try Products.path("edmm-sim"), O_RDONLY | O_CLOEXEC)
    let target = open(copy, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o755)
    defer {
        close(source)
        close(target)
    }
    guard source >= 0, target >= 0 else { throw ConnectionRefused(description: "copying edmm-sim: \(String(cString: strerror(errno)))") }
    var buffer = [UInt8](repeating: 0, count: 1 << 20)
    while true {
        let n = read(source, &buffer, buffer.count)
        guard n > 0 else { break }
        guard write(target, buffer, n) == n else {
            throw ConnectionRefused(description: "copying edmm-sim: \(String(cString: strerror(errno)))")
        }
    }
    fchmod(target, 0o755)
    return copy
}

/// A connection to edmmd opened by a process running as `credentials` (`edmm-sim hand-over`),
/// handed back to this process. edmmd sees that process's SO_PEERCRED.
func connect(as credentials: Credentials, to socketPath: String, log: String) throws -> RawConnection {
    var pair: [Int32] = [-1, -1]
    guard edmm_seqpacket_pair(&pair, 0) == 0 else { throw ConnectionRefused(description: "socketpair: \(errno)") }
    defer { close(pair[0]) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, pair[1], 3)
    posix_spawn_file_actions_addopen(&actions, 2, log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    let directory = String(socketPath[..<(socketPath.lastIndex(of: "/") ?? socketPath.startIndex)])
    let arguments =
        [Credentials.setprivPath] + credentials.setprivArguments + [
            try edmmSimForAnyone(in: directory), "hand-over", "--socket", socketPath, "--to-fd", "3",
        ]
    let argv = arguments.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var child = pid_t()
    let rc = posix_spawn(&child, Credentials.setprivPath, &actions, nil, argv, environ)
    close(pair[1])
    guard rc == 0 else { throw ConnectionRefused(description: "posix_spawn setpriv: \(String(cString: strerror(rc)))") }
    var status: Int32 = 0
    while waitpid(child, &status, 0) < 0 && errno == EINTR {}
    var marker: UInt8 = 0
    var poller = pollfd(fd: pair[0], events: Int16(POLLIN), revents: 0)
    let received =
        poll(&poller, 1, 0) > 0 ? withUnsafeMutableBytes(of: &marker) { SeqpacketIO.receive(pair[0], into: $0, maxDescriptors: 1) } : nil
    guard case .success(let message)? = received, message.length == 1, let fd = message.descriptors.first else {
        throw ConnectionRefused(description: "a process of \(credentials) could not connect: \(readFile(log) ?? "")")
    }
    return RawConnection(adopting: fd)
}

/// `edmm-sim run-host` as `credentials`: a simulated enclave host process of another user.
func spawnHost(as credentials: Credentials, daemon: DaemonProcess, label: String) throws -> Spawned {
    try Spawned(
        Credentials.setprivPath,
        credentials.setprivArguments + [
            try edmmSimForAnyone(in: daemon.directory.path), "run-host", "--socket", daemon.socketPath, "--workload", "server", "--seed",
            "3",
            "--label", label, "--working-set", "128",
        ],
        stderrPath: daemon.directory.path + "/\(label).log")
}

/// The fields of a run-host report the isolation tests read.
struct HostReportLine: Decodable {
    struct Report: Decodable {
        struct Ledger: Decodable { var problems: [String] }
        var enclave: UInt64
        var hostMatchesEPCM: Bool
        var ledger: Ledger
        var violations: [String]
        var problems: [String]
    }
    var kind: String
    var report: Report?
}

extension Spawned {
    /// Stops a run-host process, collects its report (its enclave against its own record and
    /// edmmd's ledger) and lets it unregister and exit.
    func stopAndReport() -> HostReportLine.Report? {
        send("stop")
        while let line = readLine(), !line.contains("\"stopped\"") {}
        send("check")
        var report: HostReportLine.Report?
        while let line = readLine() {
            guard let decoded = try? JSONDecoder().decode(HostReportLine.self, from: Data(line.utf8)), decoded.kind == "report" else {
                continue
            }
            report = decoded.report
            break
        }
        send("exit")
        wait()
        return report
    }

    /// Waits for the run-host's "ready" line.
    func awaitReady() -> Bool {
        while let line = readLine() {
            if line.contains("\"ready\"") { return true }
            if line.contains("\"error\"") { return false }
        }
        return false
    }
}
