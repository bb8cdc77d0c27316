import Glibc

/// A child process with a pipe to its standard input and one from its standard output (its
/// standard error is ours), optionally inheriting more descriptors as 3, 4, ... Used from one
/// thread.
final class ChildProcess {
    let pid: pid_t
    private let input: Int32
    /// Non-blocking read end of the child's standard output.
    let output: Int32
    private var buffer: [UInt8] = []
    private(set) var outputClosed = false
    /// The wait status, once the child has exited and been reaped.
    private(set) var exitStatus: Int32?

    enum SpawnError: Error, CustomStringConvertible {
        case failed(String, Int32)
        var description: String {
            switch self {
            case .failed(let call, let code): "\(call) failed: \(String(cString: strerror(code)))"
            }
        }
    }

    init(executable: String, arguments: [String], passing descriptors: [Int32] = []) throws {
        var toChild: [Int32] = [-1, -1]
        var fromChild: [Int32] = [-1, -1]
        guard pipe(&toChild) == 0 else { throw SpawnError.failed("pipe", errno) }
        guard pipe(&fromChild) == 0 else {
            toChild.forEach { close($0) }
            throw SpawnError.failed("pipe", errno)
        }
        for fd in [toChild[1], fromChild[0]] { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
        // dup2 clears FD_CLOEXEC on the copy, so the child keeps exactly these.
        for (index, fd) in descriptors.enumerated() { posix_spawn_file_actions_adddup2(&actions, fd, Int32(3 + index)) }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var child = pid_t()
        let rc = posix_spawn(&child, executable, &actions, nil, argv, environ)
        close(toChild[0])
        close(fromChild[1])
        guard rc == 0 else {
            close(toChild[1])
            close(fromChild[0])
            throw SpawnError.failed("posix_spawn \(executable)", rc)
        }
        pid = child
        input = toChild[1]
        output = fromChild[0]
        _ = fcntl(output, F_SETFL, fcntl(output, F_GETFL) | O_NONBLOCK)
    }

    deinit {
        close(input)
        close(output)
        if exitStatus == nil {
            kill(pid, SIGKILL)
            reap(blocking: true)
        }
    }

    /// Writes one line to the child's standard input; false if the child is gone.
    @discardableResult
    func send(_ line: String) -> Bool {
        let bytes = Array((line + "\n").utf8)
        return bytes.withUnsafeBytes { write(input, $0.baseAddress, $0.count) } == bytes.count
    }

    /// The complete lines that arrived since the last call (reads until the pipe is empty).
    func readLines() -> [String] {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(output, &chunk, chunk.count)
            if n > 0 {
                buffer += chunk[0..<n]
                continue
            }
            if n == 0 { outputClosed = true }
            break
        }
        var lines: [String] = []
        while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
            lines.append(String(decoding: buffer[..<newline], as: UTF8.self))
            buffer.removeSubrange(...newline)
        }
        return lines
    }

    /// The exit status once the child has exited (waiting for it when `blocking`); nil while it runs.
    @discardableResult
    func reap(blocking: Bool) -> Int32? {
        if let exitStatus { return exitStatus }
        var status: Int32 = 0
        guard waitpid(pid, &status, blocking ? 0 : WNOHANG) == pid else { return nil }
        exitStatus = status
        return status
    }

    func terminate(_ signal: Int32 = SIGKILL) { if exitStatus == nil { kill(pid, signal) } }

    /// Waits for every process to exit, killing those still running after `seconds`.
    static func reapAll(_ processes: [ChildProcess], timeout seconds: Double) {
        let deadline = ContinuousClock.now + .seconds(seconds)
        var pending = processes
        while !pending.isEmpty && ContinuousClock.now < deadline {
            pending.removeAll { $0.reap(blocking: false) != nil }
            if !pending.isEmpty { usleep(20_000) }
        }
        for process in pending {
            process.terminate()
            process.reap(blocking: true)
        }
    }
}
