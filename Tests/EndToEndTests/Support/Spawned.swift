import Glibc

/// A child process of a test: standard input from a pipe (or /dev/null), standard output into
/// a pipe the test reads, standard error into a file. Killed and reaped on deinit, so a failing
/// test leaves no process behind.
final class Spawned: @unchecked Sendable {
    // Used by one test at a time.
    let pid: pid_t
    private let input: Int32
    private let output: Int32
    private var pending: [UInt8] = []
    private(set) var exitStatus: Int32?

    init(_ executable: String, _ arguments: [String], stderrPath: String, environment: [String: String] = [:]) throws {
        Glibc.signal(SIGPIPE, SIG_IGN)
        var toChild: [Int32] = [-1, -1]
        var fromChild: [Int32] = [-1, -1]
        guard pipe(&toChild) == 0, pipe(&fromChild) == 0 else { throw SpawnFailure.system("pipe", errno) }
        for fd in [toChild[1], fromChild[0]] { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
        posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var env: [UnsafeMutablePointer<CChar>?] = []
        var index = 0
        while let entry = environ[index] {
            env.append(strdup(entry))
            index += 1
        }
        for (key, value) in environment.merging(["SWIFT_BACKTRACE": "enable=no"], uniquingKeysWith: { a, _ in a }) {
            env.insert(strdup("\(key)=\(value)"), at: 0)
        }
        env.append(nil)
        defer { env.forEach { free($0) } }
        var child = pid_t()
        let rc = posix_spawn(&child, executable, &actions, nil, argv, env)
        close(toChild[0])
        close(fromChild[1])
        guard rc == 0 else {
            close(toChild[1])
            close(fromChild[0])
            throw SpawnFailure.system("posix_spawn \(executable)", rc)
        }
        pid = child
        input = toChild[1]
        output = fromChild[0]
    }

    deinit {
        close(input)
        close(output)
        if exitStatus == nil {
            kill(pid, SIGKILL)
            _ = waitpid(pid, nil, 0)
        }
    }

    func send(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(input, $0.baseAddress, $0.count) }
    }

    /// The next line of standard output; nil at end of output or after `seconds`.
    func readLine(within seconds: Int32 = 120) -> String? {
        while true {
            if let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[..<newline], as: UTF8.self)
                pending.removeSubrange(...newline)
                return line
            }
            var fds = [pollfd(fd: output, events: Int16(POLLIN), revents: 0)]
            guard poll(&fds, 1, seconds * 1000) > 0 else { return nil }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = read(output, &chunk, chunk.count)
            guard n > 0 else { return nil }
            pending += chunk[0..<n]
        }
    }

    /// Everything left on standard output.
    func readToEnd(within seconds: Int32 = 300) -> String {
        var lines: [String] = []
        while let line = readLine(within: seconds) { lines.append(line) }
        let rest = String(decoding: pending, as: UTF8.self)
        return (lines + (rest.isEmpty ? [] : [rest])).joined(separator: "\n")
    }

    /// Waits for the exit; the `exit` code, or 128 + the signal that ended it.
    @discardableResult
    func wait() -> Int32 {
        if let exitStatus { return Self.decode(exitStatus) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        exitStatus = status
        return Self.decode(status)
    }

    func signal(_ number: Int32) { if exitStatus == nil { kill(pid, number) } }

    /// Whether the process still runs (an ended one is reaped here).
    var isRunning: Bool {
        guard exitStatus == nil else { return false }
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return true }
        exitStatus = status
        return false
    }

    private static func decode(_ status: Int32) -> Int32 {
        let signal = status & 0x7F
        return signal != 0 ? 128 + signal : (status >> 8) & 0xFF
    }
}

/// Runs a command to completion and returns its exit status and standard output.
func runToCompletion(_ executable: String, _ arguments: [String], stderrPath: String) throws -> (status: Int32, output: String) {
    let process = try Spawned(executable, arguments, stderrPath: stderrPath)
    let output = process.readToEnd()
    return (process.wait(), output)
}
