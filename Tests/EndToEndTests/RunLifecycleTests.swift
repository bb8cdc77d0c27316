import EDMMClient
import Glibc
import Testing

extension EndToEnd {
    /// `edmm-sim run` when edmmd goes away under it (issue 10): before, it kept going to the end of
    /// --duration and exited 1 with no word of why.
    @Suite struct RunLifecycle {
        /// Starts `edmm-sim run` with two hosts against `socket` and waits until both registered.
        private func startRun(_ socket: String, directory: TemporaryDirectory, _ extra: [String]) async throws -> Spawned {
            let run = try Spawned(
                try Products.path("edmm-sim"),
                ["run", "--socket", socket, "--enclaves", "2", "--workload", "server", "--working-set", "64"] + extra,
                stderrPath: directory.path + "/run.log")
            let observer = try await EDMMConnection.connect(socketPath: socket, clientName: "e2e observer")
            defer { observer.close() }
            for _ in 0..<400 where try await observer.status().enclaves < 2 { try await Task.sleep(for: .milliseconds(25)) }
            #expect(try await observer.status().enclaves == 2)
            return run
        }

        /// Polls for the end of `process`, at most `seconds`; its exit status, or nil.
        private func exit(of process: Spawned, within seconds: Int) async throws -> Int32? {
            for _ in 0..<(seconds * 20) {
                if !process.isRunning { return process.wait() }
                try await Task.sleep(for: .milliseconds(50))
            }
            return nil
        }

        @Test func aRunEndsWithinSecondsOfSHUTDOWNNOTICESayingEdmmdStopped() async throws {
            let daemon = try DaemonProcess()
            let run = try await startRun(daemon.socketPath, directory: daemon.directory, ["--duration", "120"])
            #expect(daemon.stop() == 0)
            let status = try await exit(of: run, within: 10)
            #expect(status == 75, "edmm-sim run: \(String(describing: status)); \(readFile(daemon.directory.path + "/run.log") ?? "")")
            let log = readFile(daemon.directory.path + "/run.log") ?? ""
            #expect(log.contains("edmmd stopped"), "\(log)")
        }

        @Test func aRunEndsWithinSecondsOfALostConnectionSayingEdmmdStopped() async throws {
            let daemon = try RestartableDaemon(config: "")
            let run = try await startRun(daemon.socketPath, directory: daemon.directory, ["--duration", "120"])
            daemon.kill()
            let status = try await exit(of: run, within: 10)
            #expect(status == 75)
            let log = readFile(daemon.directory.path + "/run.log") ?? ""
            #expect(log.contains("edmmd stopped"), "\(log)")
        }

        @Test func withWaitForRestartARunRidesOutARestartAndEndsWell() async throws {
            let daemon = try RestartableDaemon(config: "")
            let run = try await startRun(daemon.socketPath, directory: daemon.directory, ["--duration", "6", "--wait-for-restart", "30"])
            daemon.kill()
            try await Task.sleep(for: .milliseconds(500))
            try daemon.start()
            let status = try await exit(of: run, within: 60)
            let log = readFile(daemon.directory.path + "/run.log") ?? ""
            #expect(status == 0, "\(log)")
            #expect(log.contains("edmmd went away"), "\(log)")
            #expect(daemon.stop() == 0)
        }
    }
}
