import CEDMMShims
import EDMMClient
import EDMMCore
import EDMMProtocol
import EDMMSimHost
import Glibc
import SGXSimulator
import Testing

/// The `edmmd` executable under a fake service manager, started as systemd starts it: socket
/// activation (a listening socket named `control` at fd 3), notifications, and a restart that
/// hands the FD store's descriptors to the next process, which a reconnecting enclave host
/// finds its enclave in.
@Suite struct ServiceManagerTests {
    final class Scene {
        let directory: String
        let manager: FakeServiceManager
        /// The socket unit's listening socket: it outlives every edmmd process.
        let listener: Int32
        var socket: String { directory + "/ctl.sock" }

        init() throws {
            var template = Array("/tmp/edmmd-svc-XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else { throw TestClient.Failure.system("mkdtemp", errno) }
            directory = String(cString: made)
            manager = try FakeServiceManager(directory: directory)
            listener = edmm_seqpacket_listen(directory + "/ctl.sock", 64, 1)
            guard listener >= 0 else { throw TestClient.Failure.system("listen", errno) }
            try writeFile(config, "[daemon]\nlog_level = \"warning\"\n")
        }

        var config: String { directory + "/edmmd.toml" }

        deinit {
            manager.stop()
            close(listener)
            unlink(socket)
            unlink(config)
            rmdir(directory)
        }

        /// edmmd as the service, with the control socket and `stored` descriptors passed.
        func start(_ stored: [(name: String, fd: Int32)] = [], environment: [String] = []) throws -> ServiceProcess {
            defer { stored.forEach { close($0.fd) } }
            return try ServiceProcess(
                ["--simulate", "--epc-size", "8MiB", "--config", config],
                passing: [("control", listener)] + stored, notifySocket: manager.path, environment: environment)
        }

        /// READY=1 messages so far.
        var readyCount: Int { manager.messages.filter { $0.hasPrefix("READY=1") }.count }
    }

    @Test func edmmdServesTheSocketSystemdPassesAndLeavesItListeningWhenItStops() throws {
        let scene = try Scene()
        let daemon = try scene.start()
        let ready = try #require(scene.manager.waitFor { $0.hasPrefix("READY=1") })
        #expect(ready.contains("0 enclaves"))
        #expect(ready.contains("of 8 MiB EPC committed"))
        let client = try TestClient(path: scene.socket)
        try client.hello()
        #expect(try client.status().mode == .simulated)
        daemon.signal(SIGTERM)
        #expect(daemon.wait() == 0)
        #expect(scene.manager.messages.contains { $0.hasPrefix("STOPPING=1") })
        // The socket belongs to the socket unit: still there, still accepting.
        #expect(access(scene.socket, F_OK) == 0)
        let probe = edmm_seqpacket_connect(scene.socket, 0)
        #expect(probe >= 0)
        close(probe)
    }

    @Test func withoutAServiceManagerEdmmdSaysSoOnceAndStillServes() throws {
        var template = Array("/tmp/edmmd-svc-XXXXXX".utf8CString)
        let directory = String(cString: try #require(mkdtemp(&template)))
        let socket = directory + "/ctl.sock"
        let config = directory + "/edmmd.toml"
        try writeFile(config, "")
        defer {
            unlink(socket)
            unlink(config)
            rmdir(directory)
        }
        let daemon = try ServiceProcess(["--simulate", "--epc-size", "8MiB", "--socket", socket, "--config", config], notifySocket: nil)
        #expect(eventually { (try? TestClient(path: socket)) != nil })
        daemon.signal(SIGTERM)
        #expect(daemon.wait() == 0)
        let log = daemon.standardError()
        #expect(log.components(separatedBy: "not started by systemd").count == 2)
    }

    @Test func aRestartedEdmmdTakesItsEnclavesBackAndTheHostCarriesOn() async throws {
        let scene = try Scene()
        let first = try scene.start()
        #expect(await scene.manager.waitForAsync { $0.hasPrefix("READY=1") } != nil)
        let host = try await SimulatedEnclaveHost.launch(
            socketPath: scene.socket, blueprint: EnclaveBlueprint(label: "survivor", fireAndForget: false),
            reconnect: ReconnectPolicy(firstDelay: .milliseconds(20), maxDelay: .milliseconds(200), giveUpAfter: .seconds(30)))
        defer { host.close() }
        let handle = host.handle
        let granted = try await host.allocate(pages: 32)
        _ = try await host.run(.free(PageRange(first: granted.first, count: 8)))
        _ = try await host.run(.trim(PageRange(first: granted.first + 8, count: 4)))
        try await host.sync()
        let before = try await host.connection.stats(handle)
        #expect(await waitUntil { scene.manager.storedNames.contains("enclave-\(handle)") })

        first.signal(SIGTERM)
        #expect(first.wait() == 0)
        let second = try scene.start(scene.manager.storedCopies())
        #expect(await waitUntil { host.reconnections == 1 })
        #expect(host.handle == handle)
        let after = try await host.connection.stats(handle)
        #expect(after.summary.committedPages == before.summary.committedPages)
        #expect(after.summary.pooledPages == 8)
        #expect(after.counters.first { $0.name == "requests_allocate_ok" }?.value == 1)
        let verification = await host.verify()
        #expect(verification.epcm.matches)
        #expect(verification.ledger?.matches == true)
        // It goes on: the pool serves, and giving the enclave up removes it from the store.
        let reused = try await host.run(.allocate(pages: 8))
        #expect(reused == .allocated(PageRange(first: granted.first, count: 8), freshPages: 0, reusedPages: 8))
        try await host.unregister()
        #expect(await waitUntil { !scene.manager.storedNames.contains("enclave-\(handle)") })
        second.signal(SIGTERM)
        #expect(second.wait() == 0)
    }

    @Test func afterACrashOnlyRequestsThatAreHarmlessTwiceAreSentAgain() async throws {
        let scene = try Scene()
        let first = try scene.start()
        #expect(await scene.manager.waitForAsync { $0.hasPrefix("READY=1") } != nil)
        let host = try await SimulatedEnclaveHost.launch(
            socketPath: scene.socket, blueprint: EnclaveBlueprint(label: "crash", fireAndForget: false),
            reconnect: ReconnectPolicy(firstDelay: .milliseconds(20), maxDelay: .milliseconds(200), giveUpAfter: .seconds(30)))
        defer { host.close() }
        let granted = try await host.allocate(pages: 16)
        // Wait until the stored state has the grant (it is written within 100 ms of a change).
        #expect(
            await waitUntil {
                let copies = scene.manager.storedCopies()
                defer { copies.forEach { close($0.fd) } }
                guard let a = copies.first(where: { $0.name == "state.0" }), let b = copies.first(where: { $0.name == "state.1" }) else {
                    return false
                }
                return StoredStateReader.trackedPages(a.fd, b.fd) == 16
            })
        // A daemon that reads nothing any more, then dies: the two requests stay unanswered.
        first.signal(SIGSTOP)
        #expect(await waitUntil { first.state == "T" })
        let trim = PageRange(first: granted.first, count: 4)
        let restrict = PageRange(first: granted.first + 4, count: 4)
        let results = Task { await host.perform([.trim(trim), .restrict(restrict, to: .read)]) }
        #expect(await waitUntil { host.connection.requestsInFlight.values.reduce(0, +) == 2 })
        first.signal(SIGKILL)
        _ = first.wait()
        let second = try scene.start(scene.manager.storedCopies())
        let outcome = await results.value
        #expect(outcome.first == .failure(.interrupted(operation: "TRIM")))
        #expect((try? outcome.last?.get()) != nil)
        #expect(host.reconnections == 1)
        #expect(host.tracker.pages[trim.first] == .inUse(.rw))
        #expect(host.enclave.pageInfo(offset: restrict.byteOffset).permissions == .read)
        second.signal(SIGTERM)
        #expect(second.wait() == 0)
    }

    @Test func aDaemonThatLostTheEnclaveGetsItRegisteredAgainWithItsPages() async throws {
        let scene = try Scene()
        let first = try scene.start()
        #expect(await scene.manager.waitForAsync { $0.hasPrefix("READY=1") } != nil)
        let host = try await SimulatedEnclaveHost.launch(
            socketPath: scene.socket, blueprint: EnclaveBlueprint(label: "adopted", fireAndForget: false),
            reconnect: ReconnectPolicy(firstDelay: .milliseconds(20), maxDelay: .milliseconds(200), giveUpAfter: .seconds(30)))
        defer { host.close() }
        let granted = try await host.allocate(pages: 24)
        _ = try await host.run(.free(PageRange(first: granted.first + 20, count: 4)))
        first.signal(SIGTERM)
        #expect(first.wait() == 0)
        // Only the simulated EPC comes back: this daemon has no record of the enclave.
        let second = try scene.start(
            scene.manager.storedCopies().filter { entry in
                if entry.name == "machine" { return true }
                close(entry.fd)
                return false
            })
        #expect(await waitUntil { host.reconnections == 1 })
        let stats = try await host.connection.stats(host.handle)
        // A new registration: this daemon never saw the ALLOCATE.
        #expect(stats.counters.first { $0.name == "requests_register_ok" }?.value == 1)
        #expect(stats.counters.first { $0.name == "requests_allocate_ok" }?.value == 0)
        #expect(stats.summary.committedPages == 20)
        #expect(stats.summary.pooledPages == 4)
        let verification = await host.verify()
        #expect(verification.epcm.matches)
        #expect(verification.ledger?.matches == true)
        second.signal(SIGTERM)
        #expect(second.wait() == 0)
    }
}

private func writeFile(_ path: String, _ text: String) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw TestClient.Failure.system("open \(path)", errno) }
    defer { close(fd) }
    let bytes = Array(text.utf8)
    guard write(fd, bytes, bytes.count) == bytes.count else { throw TestClient.Failure.system("write", errno) }
}
