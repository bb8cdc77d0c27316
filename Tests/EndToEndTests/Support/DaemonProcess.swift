import CEDMMShims
import EDMMClient
import EDMMProtocol
import EDMMSimHost
import Glibc

/// A real edmmd process on the simulated EPC, with its socket, configuration file and log in a
/// private temporary directory. `stop()` sends SIGTERM and returns the exit status; deinit kills
/// what is left and removes the directory.
final class DaemonProcess: @unchecked Sendable {
    let directory: TemporaryDirectory
    let socketPath: String
    let logPath: String
    private let process: Spawned

    /// `config` is the body of an edmmd.toml; `flags` are added to the command line.
    init(config: String = "", flags: [String] = [], epcSize: String = "64MiB") throws {
        directory = try TemporaryDirectory()
        socketPath = directory.path + "/edmmd.sock"
        logPath = directory.path + "/edmmd.log"
        let configPath = directory.path + "/edmmd.toml"
        let file = fopen(configPath, "w")
        fputs(config, file)
        fclose(file)
        process = try Spawned(
            try Products.path("edmmd"),
            ["--simulate", "--socket", socketPath, "--config", configPath, "--metrics", "", "--epc-size", epcSize] + flags,
            stderrPath: logPath)
        guard waitUntilAccepting() else {
            process.signal(SIGKILL)
            throw SpawnFailure.timedOut("edmmd did not accept on \(socketPath); its log: \(log)")
        }
    }

    deinit {
        process.signal(SIGKILL)
        process.wait()
        directory.remove()
    }

    var pid: pid_t { process.pid }

    /// Whether edmmd still runs.
    var isRunning: Bool { process.isRunning }

    var log: String { readFile(logPath) ?? "" }

    private func waitUntilAccepting() -> Bool {
        for _ in 0..<600 {
            let fd = socketPath.withCString { edmm_seqpacket_connect($0, 0) }
            if fd >= 0 {
                close(fd)
                return true
            }
            if !process.isRunning { return false }
            usleep(50_000)
        }
        return false
    }

    /// SIGTERM, then the exit status.
    func stop() -> Int32 {
        process.signal(SIGTERM)
        return process.wait()
    }

    /// Descriptors the daemon holds open now.
    func openDescriptors() -> Int {
        guard let dir = opendir("/proc/\(pid)/fd") else { return -1 }
        defer { closedir(dir) }
        var count = 0
        while readdir(dir) != nil { count += 1 }
        return count - 2  // "." and ".."
    }

    /// A connection for looking (STATUS, STATS).
    func connect() async throws -> EDMMConnection {
        try await EDMMConnection.connect(socketPath: socketPath, clientName: "e2e")
    }

    func status() async throws -> StatusReply {
        let connection = try await connect()
        defer { connection.close() }
        return try await connection.status()
    }

    /// Polls STATUS on `connection` until `condition` holds (or about a minute passes); returns
    /// the last one.
    func status(on connection: EDMMConnection, until condition: (StatusReply) -> Bool) async throws -> StatusReply {
        var status = try await connection.status()
        for _ in 0..<1200 where !condition(status) {
            try await Task.sleep(for: .milliseconds(50))
            status = try await connection.status()
        }
        return status
    }

    /// Launches a simulated enclave host in this process, as its own client.
    func host(_ label: String, blueprint: (inout EnclaveBlueprint) -> Void = { _ in }) async throws -> SimulatedEnclaveHost {
        var b = EnclaveBlueprint(label: label, size: 1 << 26, fireAndForget: false)
        blueprint(&b)
        return try await SimulatedEnclaveHost.launch(socketPath: socketPath, blueprint: b, clientName: "e2e \(label)")
    }
}
