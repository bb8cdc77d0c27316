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

    init(_ program: String, _ arguments: [String]) throws {
        let path = Self.productPath(program)
        guard access(path, X_OK) == 0 else { throw TestClient.Failure.unexpected("\(path) not found: run swift build first") }
        var pipeEnds: [Int32] = [0, 0]
        guard pipe(&pipeEnds) == 0 else { throw TestClient.Failure.system("pipe", errno) }
        _ = fcntl(pipeEnds[0], F_SETFD, FD_CLOEXEC)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], 2)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        var argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var environment: [UnsafeMutablePointer<CChar>?] = [strdup("SWIFT_BACKTRACE=enable=no"), nil]
        defer { environment.forEach { free($0) } }
        var child = pid_t()
        let rc = posix_spawn(&child, path, &actions, nil, &argv, &environment)
        close(pipeEnds[1])
        guard rc == 0 else {
            close(pipeEnds[0])
            throw TestClient.Failure.system("posix_spawn \(path)", rc)
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
