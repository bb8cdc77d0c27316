import EDMMClient
import EDMMConfig
import EDMMCore
import EDMMDaemon
import EDMMProtocol
import EDMMSimHost
import Glibc
import Logging
import SGXSimulator
import Synchronization
import Testing

/// A restart through the FD store, in process: one daemon stores its enclaves, the next one is
/// given what was stored (as systemd passes it back) and takes them over.
@Suite struct RestartTests {
    /// An FD store in memory: keeps a copy of each descriptor under its name, one per file.
    final class MemoryDescriptorStore: DescriptorStore {
        private let entries = Mutex<[(name: String, fd: Int32)]>([])

        func store(_ fd: Int32, name: String) -> Bool {
            entries.withLock { entries in
                guard !entries.contains(where: { sameFile($0.fd, fd) }) else { return true }
                entries.append((name, fcntl(fd, F_DUPFD_CLOEXEC, 3)))
                return true
            }
        }

        func remove(name: String) {
            entries.withLock { entries in
                for entry in entries where entry.name == name { close(entry.fd) }
                entries.removeAll { $0.name == name }
            }
        }

        var names: [String] { entries.withLock { $0.map(\.name).sorted() } }

        /// Copies for the next daemon, by name (it takes them over).
        func copies() -> [String: Int32] {
            entries.withLock { Dictionary($0.map { ($0.name, fcntl($0.fd, F_DUPFD_CLOEXEC, 3)) }, uniquingKeysWith: { a, _ in a }) }
        }

        deinit { entries.withLock { $0.forEach { close($0.fd) } } }
    }

    /// A directory whose socket path every daemon generation of a test uses.
    final class Site {
        let directory: String
        let store = MemoryDescriptorStore()
        var socket: String { directory + "/ctl.sock" }
        /// The socket of a second daemon running beside the first.
        var otherSocket: String { directory + "/other.sock" }

        init() throws {
            var template = Array("/tmp/edmmd-restart-XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else { throw TestClient.Failure.system("mkdtemp", errno) }
            directory = String(cString: made)
        }

        func startDaemon(
            grace: Duration = .seconds(60), passing stored: [String: Int32] = [:], socket: String? = nil,
            scopes: (any PeerScopeSource)? = nil
        ) throws -> Daemon {
            var config = DaemonConfig()
            config.kubernetes.enabled = scopes != nil
            config.daemon.socket = socket ?? self.socket
            config.daemon.device = .simulated
            config.daemon.logLevel = .warning
            config.simulator.epcBytes = 16 << 20
            config.simulator.maxEnclaves = 64
            config.pool.thresholdPercent = 100
            let level = SharedLogLevel(.warning)
            var options = DaemonOptions(
                logger: Logger(label: "edmmd-restart-test") { StandardErrorLogHandler(label: $0, level: level) }, logLevel: level)
            options.descriptorStore = store
            options.storedDescriptors = stored
            options.reattachGrace = grace
            if let scopes { options.peerScopes = scopes }
            let daemon = try Daemon(config: config, options: options)
            try daemon.start()
            return daemon
        }

        func connect(to socket: String? = nil) throws -> TestClient {
            let client = try TestClient(path: socket ?? self.socket)
            try client.hello()
            return client
        }

        func remove() {
            unlink(socket)
            unlink(otherSocket)
            rmdir(directory)
        }
    }

    @Test func aRestartWithTheFDStoreKeepsEveryRegistrationWithItsLedgerAndCounters() async throws {
        let site = try Site()
        defer { site.remove() }
        let first = try site.startDaemon()
        let client = try site.connect()
        let machine = try SimulatedMachine.open(fd: try #require(client.receivedDescriptors.last))
        let enclave = try TestEnclave(machine: machine)
        let (handle, _) = try client.register(enclave, label: "kept")
        let grant = try client.allocate(AllocateRequest(enclave: handle, offset: 0, length: 16 * 4096))
        enclave.acceptFresh(grant.fresh)
        _ = try client.done(.free(RangeRequest(enclave: handle, range: pages(0, 4))))
        _ = try client.done(.trim(RangeRequest(enclave: handle, range: pages(4, 2))))
        enclave.acceptTrim([pages(4, 2)])
        let before = try client.stats(handle)
        #expect(site.store.names == ["enclave-\(handle)", "machine", "state.0", "state.1"])

        await first.shutdown(restarting: true)
        guard case .shutdown(let notice) = try client.nextPush().push else {
            Issue.record("expected SHUTDOWN_NOTICE")
            return
        }
        #expect(notice.restarting)
        #expect(site.store.names.contains("enclave-\(handle)"))

        let second = try site.startDaemon(passing: site.store.copies())
        let again = try site.connect()
        let sameMachine = try SimulatedMachine.open(fd: try #require(again.receivedDescriptors.last))
        #expect(sameMachine.uuidString == machine.uuidString)
        guard case .attach(let attached) = try again.expect(.attach(handle)) else {
            Issue.record("expected an ATTACH reply")
            return
        }
        #expect(attached.label == "kept")
        let after = try again.stats(handle)
        #expect(after.summary.committedPages == before.summary.committedPages)
        #expect(after.summary.pooledPages == 4)
        #expect(after.summary.trimmingPages == 2)
        #expect(after.counter("requests_allocate_ok") == 1)
        #expect(after.counter("ioctl_modify_types_calls") == before.counter("ioctl_modify_types_calls"))
        // The restored ledger goes on: the trimmed pages are removed, the pool serves again.
        _ = try again.done(.trimAccepted(RangeRequest(enclave: handle, range: pages(4, 2))))
        let reused = try again.allocate(AllocateRequest(enclave: handle, length: 4 * 4096))
        #expect(reused.reused == [pages(0, 4)])
        #expect(try again.stats(handle).counter("ledger_epcm_mismatches") == 0)
        // A new registration does not reuse the restored handle.
        let other = try TestEnclave(machine: sameMachine, base: 1 << 33)
        let (otherHandle, _) = try again.register(other, label: "new")
        #expect(otherHandle > handle)
        await second.shutdown()
    }

    @Test func aRequestLeftUnansweredByAnAnnouncedRestartIsSentAgainAfterReattaching() async throws {
        let site = try Site()
        defer { site.remove() }
        let first = try site.startDaemon()
        let host = try await SimulatedEnclaveHost.launch(
            socketPath: site.socket, blueprint: EnclaveBlueprint(label: "patient"),
            reconnect: ReconnectPolicy(firstDelay: .milliseconds(10), maxDelay: .milliseconds(100), giveUpAfter: .seconds(30)))
        defer { host.close() }
        let granted = try await host.allocate(pages: 8)
        await first.shutdown(restarting: true)
        // Sent while edmmd is away: it cannot have been applied, so it goes out again once the
        // host is back, although ALLOCATE is not harmless twice.
        let waiting = Task { await host.perform([.allocate(pages: 4)]) }
        try await Task.sleep(for: .milliseconds(100))
        let second = try site.startDaemon(passing: site.store.copies())
        let result = await waiting.value
        #expect(result.first.flatMap { try? $0.get() }?.granted?.first == granted.end)
        #expect(host.reconnections == 1)
        #expect(await host.verify().epcm.matches)
        await second.shutdown()
    }

    @Test func aRestoredEnclaveNobodyAttachesAgainIsUnregisteredAfterTheGrace() async throws {
        let site = try Site()
        defer { site.remove() }
        let first = try site.startDaemon()
        let client = try site.connect()
        let machine = try SimulatedMachine.open(fd: try #require(client.receivedDescriptors.last))
        let enclave = try TestEnclave(machine: machine)
        let (handle, _) = try client.register(enclave, label: "orphan")
        await first.shutdown(restarting: true)

        let second = try site.startDaemon(grace: .milliseconds(200), passing: site.store.copies())
        let viewer = try site.connect()
        #expect(try viewer.status().enclaves == 1)
        #expect(eventually { (try? viewer.status().enclaves) == 0 })
        #expect(eventually { !site.store.names.contains("enclave-\(handle)") })
        await second.shutdown()
    }

    @Test func afterAnUncleanStopPoolPagesAreRestoredAsCommitted() async throws {
        let site = try Site()
        defer { site.remove() }
        let first = try site.startDaemon()
        let client = try site.connect()
        let machine = try SimulatedMachine.open(fd: try #require(client.receivedDescriptors.last))
        let enclave = try TestEnclave(machine: machine)
        let (handle, _) = try client.register(enclave, label: "crashed")
        let grant = try client.allocate(AllocateRequest(enclave: handle, offset: 0, length: 8 * 4096))
        enclave.acceptFresh(grant.fresh)
        _ = try client.done(.free(RangeRequest(enclave: handle, range: pages(0, 2))))
        // What systemd would hold had this daemon died now: the periodic state, not a final one.
        var stored: [String: Int32] = [:]
        #expect(
            eventually(timeout: .seconds(10)) {
                stored.values.forEach { close($0) }
                stored = site.store.copies()
                return Self.storedPool(stored) == 2
            })

        let second = try site.startDaemon(passing: stored, socket: site.otherSocket)
        let again = try site.connect(to: site.otherSocket)
        _ = try again.expect(.attach(handle))
        let summary = try again.stats(handle).summary
        #expect(summary.pooledPages == 0)
        #expect(summary.committedPages == 8)
        await second.shutdown()
        await first.shutdown()
    }

    @Test func storedDescriptorsNothingUsesAreClosedAndDroppedFromTheStore() async throws {
        let site = try Site()
        defer { site.remove() }
        let (readEnd, writeEnd) = try makePipe()
        let null = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer {
            close(readEnd)
            close(writeEnd)
            close(null)
        }
        #expect(site.store.store(readEnd, name: "enclave-77"))
        #expect(site.store.store(null, name: "leftover"))
        let daemon = try site.startDaemon(passing: site.store.copies())
        #expect(!site.store.names.contains("enclave-77"))
        #expect(!site.store.names.contains("leftover"))
        // Only this test's own ends of the pipe are left: the daemon closed what it was passed.
        #expect(descriptorsOpen(onSameFileAs: readEnd) == 2)
        await daemon.shutdown()
    }

    /// The pool pages of the newest state in `stored` (nil if there is none).
    private static func storedPool(_ stored: [String: Int32]) -> UInt64? {
        guard let a = stored["state.0"], let b = stored["state.1"] else { return nil }
        return StoredStateReader.pooledPages(a, b)
    }
}
