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
        let daemon = try ChildProcess(
            "edmmd", ["--config", config, "--socket", socket, "--simulate", "--epc-size", "8MiB", "--metrics", ""])
        var client: TestClient?
        #expect(
            eventually {
                client = try? TestClient(path: socket)
                return client != nil
            })
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

    // MARK: Start-up failures with the metrics endpoint on (issue 10)

    /// A start-up failure ends edmmd within a few seconds with status 3 and one line saying what
    /// failed, also when the metrics endpoint was already serving. Before, edmmd printed "serving
    /// /metrics" and hung forever, deaf to SIGTERM.
    private func expectPromptStartupFailure(
        _ process: ChildProcess, naming problem: String, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        guard let status = process.wait(timeout: .seconds(10)) else {
            Issue.record("edmmd did not exit within 10 s of a start-up failure", sourceLocation: sourceLocation)
            process.signal(SIGKILL)
            return
        }
        #expect(status == 3, sourceLocation: sourceLocation)
        let failures = process.standardError().split(separator: "\n").filter { $0.hasPrefix("edmmd: ") }
        #expect(failures.count == 1, "\(failures)", sourceLocation: sourceLocation)
        #expect(failures.first?.contains(problem) == true, "\(failures)", sourceLocation: sourceLocation)
    }

    @Test func aMissingSocketDirectoryEndsStartUpWithStatusThreeWhileMetricsServe() throws {
        let port = try freeLoopbackPort()
        let daemon = try ChildProcess(
            "edmmd", ["--simulate", "--epc-size", "8MiB", "--metrics", "127.0.0.1:\(port)", "--socket", "/no/such/dir-\(getpid())/x.sock"])
        expectPromptStartupFailure(daemon, naming: "/no/such/dir-\(getpid())")
        #expect(scrapeMetrics(port: port) == nil)
    }

    @Test func aSocketInUseEndsStartUpWithStatusThreeWhileMetricsServe() throws {
        let dir = try temporaryDirectory()
        let socket = dir + "/ctl.sock"
        defer {
            unlink(socket)
            rmdir(dir)
        }
        let first = try ChildProcess(
            "edmmd", ["--socket", socket, "--simulate", "--epc-size", "8MiB", "--log-level", "warning", "--metrics", ""])
        #expect(eventually { (try? TestClient(path: socket)) != nil })
        let port = try freeLoopbackPort()
        let second = try ChildProcess(
            "edmmd", ["--socket", socket, "--simulate", "--epc-size", "8MiB", "--log-level", "warning", "--metrics", "127.0.0.1:\(port)"])
        expectPromptStartupFailure(second, naming: "already listens")
        first.signal(SIGTERM)
        #expect(first.wait(timeout: .seconds(10)) == 0)
    }

    @Test func aBadConfigurationAtReloadKeepsTheOldOneAndSaysWhyWhileMetricsServe() throws {
        let dir = try temporaryDirectory()
        let socket = dir + "/ctl.sock"
        let config = dir + "/edmmd.toml"
        defer {
            unlink(config)
            unlink(socket)
            rmdir(dir)
        }
        try write("[daemon]\nlog_level = \"warning\"\n", to: config)
        let port = try freeLoopbackPort()
        let daemon = try ChildProcess(
            "edmmd", ["--config", config, "--socket", socket, "--simulate", "--epc-size", "8MiB", "--metrics", "127.0.0.1:\(port)"])
        var client: TestClient?
        #expect(
            eventually {
                client = try? TestClient(path: socket)
                return client != nil
            })
        let connection = try #require(client)
        try connection.hello()
        #expect(try connection.status().batching)

        try write("[daemon]\nlog_level = \"warning\"\n[batch]\nenabled = 3\n", to: config)
        daemon.signal(SIGHUP)
        let reload = try connection.call(.reload)
        #expect(reload.error?.code == .invalidArgument)
        #expect(reload.error?.message.contains("old configuration kept") == true)
        #expect(try connection.status().batching)
        #expect(scrapeMetrics(port: port)?.contains("edmmd_enclaves") == true)

        daemon.signal(SIGTERM)
        #expect(daemon.wait(timeout: .seconds(10)) == 0)
        let log = daemon.standardError()
        #expect(log.contains("configuration not reloaded"))
        #expect(log.contains("\(config):4"))
    }

    /// SIGTERM at any moment of start-up (before, during and after the endpoint and the control
    /// socket come up) ends edmmd promptly.
    @Test func sigtermAtAnyMomentOfStartUpEndsEdmmdPromptly() throws {
        let dir = try temporaryDirectory()
        defer { rmdir(dir) }
        for delay in [0, 2, 10, 30, 80, 200] as [UInt32] {
            let socket = dir + "/ctl-\(delay).sock"
            let port = try freeLoopbackPort()
            let daemon = try ChildProcess(
                "edmmd",
                ["--socket", socket, "--simulate", "--epc-size", "8MiB", "--log-level", "warning", "--metrics", "127.0.0.1:\(port)"])
            usleep(delay * 1000)
            daemon.signal(SIGTERM)
            let status = daemon.wait(timeout: .seconds(10))
            #expect(status == 0 || status == 128 + SIGTERM, "SIGTERM after \(delay) ms: \(String(describing: status))")
            if status == nil { daemon.signal(SIGKILL) }
            unlink(socket)
        }
    }
}
