import CEDMMShims
import EDMMClient
import EDMMCore
import EDMMProtocol
import EDMMSimHost
import Glibc
import Testing

/// edmmd under a (fake) service manager with the FD store, killed with SIGKILL right after a
/// flush, before its stored state caught up with the ioctls it ran: the restarted daemon's
/// ledger must still come back equal to the simulated EPCM.
@Suite struct FDStoreCrashTests {
    @Test func aDaemonKilledRightAfterATrimComesBackWithALedgerEqualToTheEPCM() async throws {
        var template = Array("/tmp/edmmd-crash-XXXXXX".utf8CString)
        let directory = String(cString: try #require(mkdtemp(&template)))
        let manager = try FakeServiceManager(directory: directory)
        let socketPath = directory + "/ctl.sock"
        let listener = edmm_seqpacket_listen(socketPath, 64, 1)
        defer {
            manager.stop()
            close(listener)
            unlink(socketPath)
            rmdir(directory)
        }
        // A state interval far longer than the test: whatever happens after the first write is
        // known to the stored state only if edmmd reconciles it at restore.
        func start(_ stored: [(name: String, fd: Int32)]) throws -> ServiceProcess {
            defer { stored.forEach { close($0.fd) } }
            return try ServiceProcess(
                ["--simulate", "--epc-size", "8MiB"], passing: [("control", listener)] + stored, notifySocket: manager.path)
        }
        let first = try start([])
        #expect(await manager.waitForAsync { $0.hasPrefix("READY=1") } != nil)
        let host = try await SimulatedEnclaveHost.launch(
            socketPath: socketPath, blueprint: EnclaveBlueprint(label: "caught", fireAndForget: false),
            reconnect: ReconnectPolicy(firstDelay: .milliseconds(20), maxDelay: .milliseconds(200), giveUpAfter: .seconds(30)))
        defer { host.close() }
        let granted = try await host.allocate(pages: 16)
        _ = try await host.run(.free(PageRange(first: granted.first + 12, count: 4)))
        #expect(await waitUntil { manager.storedNames.contains("enclave-\(host.handle)") })
        try await Task.sleep(for: .milliseconds(300))
        // EMODT(TRIM) done and answered, the enclave EACCEPTs; then edmmd dies before its next write.
        _ = try await host.run(.trim(PageRange(first: granted.first, count: 4)))
        first.signal(SIGKILL)
        _ = first.wait()
        let second = try start(manager.storedCopies())
        defer {
            second.signal(SIGTERM)
            second.wait()
        }
        #expect(await waitUntil { host.reconnections == 1 })
        let verification = await host.verify()
        #expect(verification.epcm.matches, "\(verification.epcm.examples)")
        #expect(verification.ledger?.matches == true, "\(verification.ledger?.problems ?? []) \(verification.problems)")
    }
}
