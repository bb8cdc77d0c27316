import Glibc

/// A program from the build's products folder (beside the test bundle), run as a real process
/// with its standard error captured.
final class ChildProcess {
    let pid: pid_t
    private let errorOutput: Int32
    private(set) var exitStatus: Int32?

    /// `<products>/<name>`, next to the test executable.
    static func productPath(_ name: String) -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        var dir = n > 0 ? String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        while !dir.isEmpty, !dir.hasSuffix("/") { dir.removeLast() }
        return dir + name
    }

    convenience init(_ program: String, _ arguments: [String]) throws {
        let path = Self.productPath(program)
        try self.init(spawning: path, argv: [path] + arguments, environment: ["SWIFT_BACKTRACE=enable=no"], checking: path)
    }

    /// Spawns `executable` with standard output to /dev/null, standard error captured and
    /// `descriptors` at 3, 4, ... (`checking` must exist: the product the test needs).
    init(spawning executable: String, argv arguments: [String], environment: [String], descriptors: [Int32] = [], checking product: String)
        throws
    {
        guard access(product, X_OK) == 0 else { throw TestClient.Failure.unexpected("\(product) not found: run swift build first") }
        var pipeEnds: [Int32] = [0, 0]
        guard pipe(&pipeEnds) == 0 else { throw TestClient.Failure.system("pipe", errno) }
        _ = fcntl(pipeEnds[0], F_SETFD, FD_CLOEXEC)
        // Move the descriptors out of the way of 3, 4, ... first, so that no dup2 overwrites one
        // that is still to be placed.
        let parked = descriptors.map { fcntl($0, F_DUPFD_CLOEXEC, 100) }
        defer { parked.forEach { close($0) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], 2)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        for (index, fd) in parked.enumerated() { posix_spawn_file_actions_adddup2(&actions, fd, Int32(3 + index)) }
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
        defer { envp.forEach { free($0) } }
        var child = pid_t()
        let rc = posix_spawn(&child, executable, &actions, nil, &argv, &envp)
        close(pipeEnds[1])
        guard rc == 0 else {
            close(pipeEnds[0])
            throw TestClient.Failure.system("posix_spawn \(executable)", rc)
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
    var state: Character? { processState(pid) }

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

    /// Waits at most `timeout` for the process to end; its exit status, or nil if it still runs.
    func wait(timeout: Duration) -> Int32? {
        if let exitStatus { return exitStatus }
        var status: Int32 = 0
        let ended = eventually(timeout: timeout) { waitpid(pid, &status, WNOHANG) == pid }
        guard ended else { return nil }
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

/// The state letter of process `pid` in /proc/<pid>/stat ("T" once SIGSTOP took effect).
func processState(_ pid: pid_t) -> Character? {
    let fd = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 512)
    let n = read(fd, &buffer, buffer.count)
    guard n > 0, let paren = buffer[..<n].lastIndex(of: UInt8(ascii: ")")), paren + 2 < n else { return nil }
    return Character(Unicode.Scalar(buffer[paren + 2]))
}
