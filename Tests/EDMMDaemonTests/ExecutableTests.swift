import EDMMProtocol
import Glibc
import Testing

/// The `edmmd` executable: flags over the file, SIGHUP reload, SIGTERM drain with exit 0, and
/// --check-config.
@Suite struct ExecutableTests {
    private func temporaryDirectory() throws -> String {
        var template = Array("/tmp/edmmd-exe-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw TestClient.Failure.system("mkdtemp", errno) }
        return String(cString: made)
    }

    private func write(_ text: String, to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TestClient.Failure.system("open \(path)", errno) }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard Glibc.write(fd, bytes, bytes.count) == bytes.count else { throw TestClient.Failure.system("write", errno) }
    }

    @Test func edmmdServesReloadsOnSIGHUPAndExitsZeroOnSIGTERM() throws {
        let dir = try temporaryDirectory()
        let socket = dir + "/ctl.sock"
        let config = dir + "/edmmd.toml"
        defer {
            unlink(config)
            unlink(socket)
            rmdir(dir)
        }
        try write("[daemon]\nlog_level = \"warning\"\n", to: config)
        let daemon = try ChildProcess("edmmd", ["--config", config, "--socket", socket, "--simulate", "--epc-size", "8MiB", "--metrics", ""])
        var client: TestClient?
        #expect(eventually { client = try? TestClient(path: socket); return client != nil })
        let connection = try #require(client)
        try connection.hello()
        let status = try connection.status()
        #expect(status.mode == .simulated)
        #expect(status.modeReason == "--simulate given")
        #expect(status.epcTotalBytes == 8 << 20)
        #expect(status.batching)

        try write("[daemon]\nlog_level = \"warning\"\n[batch]\nenabled = false\n", to: config)
        daemon.signal(SIGHUP)
        #expect(try eventually { try connection.status().batching == false })

        daemon.signal(SIGTERM)
        guard case .shutdown = try connection.nextPush().push else {
            Issue.record("expected SHUTDOWN_NOTICE")
            return
        }
        #expect(connection.waitForClose())
        #expect(daemon.wait() == 0)
        #expect(access(socket, F_OK) != 0)
    }

    @Test func checkConfigPrintsEveryProblemWithFileAndLineAndExitsOne() throws {
        let dir = try temporaryDirectory()
        let config = dir + "/bad.toml"
        defer {
            unlink(config)
            rmdir(dir)
        }
        try write("[batch]\nwindow_us = 0\n[pool]\nthreshold = 3\n", to: config)
        let check = try ChildProcess("edmmd", ["--check-config", config])
        #expect(check.wait() == 1)
        let errors = check.standardError()
        #expect(errors.contains("\(config):2:"))
        #expect(errors.contains("\(config):4:"))

        try write("[batch]\nwindow_us = 200\n", to: config)
        #expect(try ChildProcess("edmmd", ["--check-config", config]).wait() == 0)
    }

    @Test func aSocketSomeoneListensOnIsNotTakenOver() throws {
        let dir = try temporaryDirectory()
        let socket = dir + "/ctl.sock"
        defer {
            unlink(socket)
            rmdir(dir)
        }
        let first = try ChildProcess("edmmd", ["--socket", socket, "--simulate", "--log-level", "warning", "--metrics", ""])
        #expect(eventually { (try? TestClient(path: socket)) != nil })
        let second = try ChildProcess("edmmd", ["--socket", socket, "--simulate", "--log-level", "warning", "--metrics", ""])
        #expect(second.wait() == 3)
        #expect(second.standardError().contains("already listens"))
        first.signal(SIGTERM)
        #expect(first.wait() == 0)
    }
}
