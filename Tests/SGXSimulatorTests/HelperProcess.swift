import Glibc
import SGXSimulator

/// A real second process (`edmm-sim sim-helper`) that inherits the machine and enclave memfds
/// as descriptors 3 and 4 and answers replay lines on its standard output.
final class HelperProcess: @unchecked Sendable {
    // Used by one test thread at a time; the fds and pid never change after init.
    let pid: pid_t
    private let toChild: Int32
    private let fromChild: Int32
    private var pending: [UInt8] = []

    enum Failure: Error, CustomStringConvertible {
        case binaryMissing(String)
        case spawn(Int32)
        case closed

        var description: String {
            switch self {
            case .binaryMissing(let path): "\(path) not found: build the edmm-sim product first (swift build)"
            case .spawn(let rc): "posix_spawn failed: \(rc)"
            case .closed: "helper closed its output"
            }
        }
    }

    /// `edmm-sim` next to the test bundle (both live in the build's products folder).
    static var binaryPath: String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        let exe = n > 0 ? String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        // The test executable (<products>/edmmdPackageTests.xctest) sits beside the products.
        var dir = exe
        while !dir.isEmpty, !dir.hasSuffix("/") { dir.removeLast() }
        return dir + "edmm-sim"
    }

    init(machine: SimulatedMachine, enclave: SimulatedEnclave) throws {
        let path = Self.binaryPath
        guard access(path, X_OK) == 0 else { throw Failure.binaryMissing(path) }
        // A helper that died must fail the test with EPIPE, not kill the test process.
        signal(SIGPIPE, SIG_IGN)
        var input: [Int32] = [0, 0]
        var output: [Int32] = [0, 0]
        guard pipe(&input) == 0, pipe(&output) == 0 else { throw Failure.spawn(errno) }
        for fd in input + output { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input[0], 0)
        posix_spawn_file_actions_adddup2(&actions, output[1], 1)
        posix_spawn_file_actions_adddup2(&actions, machine.fd, 3)
        posix_spawn_file_actions_adddup2(&actions, enclave.fd, 4)
        let args = [path, "sim-helper", "--machine-fd", "3", "--enclave-fd", "4"]
        var argv: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var child = pid_t()
        let rc = posix_spawn(&child, path, &actions, nil, &argv, environ)
        close(input[0])
        close(output[1])
        guard rc == 0 else {
            close(input[1])
            close(output[0])
            throw Failure.spawn(rc)
        }
        pid = child
        toChild = input[1]
        fromChild = output[0]
        let ready = try readLine()
        guard ready == "{\"ready\":true}" else { throw Failure.closed }
    }

    deinit {
        close(toChild)
        close(fromChild)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }

    /// Sends one replay line and returns the helper's answer.
    func send(_ line: String) throws -> String {
        let bytes = Array((line + "\n").utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(toChild, $0.baseAddress, $0.count) }
            guard n > 0 else { throw Failure.closed }
            offset += n
        }
        return try readLine()
    }

    /// Ends the helper abruptly (SIGKILL) and reaps it: it never closes its enclave.
    func kill() {
        Glibc.kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }

    private func readLine() throws -> String {
        while true {
            if let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[..<newline], as: UTF8.self)
                pending.removeSubrange(...newline)
                return line
            }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = chunk.withUnsafeMutableBytes { read(fromChild, $0.baseAddress, $0.count) }
            guard n > 0 else { throw Failure.closed }
            pending += chunk[..<n]
        }
    }
}
