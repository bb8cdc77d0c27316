import EDMMClient
import EDMMCore
import EDMMProtocol
import EDMMSimHost
import Glibc
import SGXDevice
import SGXSimulator
import Testing

/// The double-EACCEPT hazard: edmmd is untrusted, and a daemon that lies about which pages are
/// fresh or freed must not get the enclave to accept or give back pages it holds.
@Suite struct LyingDaemonTests {
    @Test func theHostRefusesToAcceptAFreshGrantOfAPageItHolds() async throws {
        let daemon = try FakeDaemon()
        defer { daemon.stop() }
        let host = try await SimulatedHostTests.launch(daemon)
        defer { host.close() }
        let held = try await host.allocate(pages: 2)
        let secret = host.enclave.base + held.byteOffset
        try #require(host.cpu.write(secret, 0x5EC12E7).get() == ())
        // From now on the daemon calls the held pages fresh.
        daemon.state.withLock { s in
            s.lie = { op, _ in
                guard case .allocate = op.request else { return nil }
                let reply = AllocateReply(granted: WireRange(held), permissions: .rw, reused: [], fresh: [WireRange(held)])
                return ResponseOperation(id: op.id, verb: .allocate, outcome: .success(.allocate(reply)))
            }
        }
        let eacceptsBefore = host.enclave.counters[.eaccept]
        await #expect(throws: EnclaveHostError.refused(.doubleAccept(offset: held.byteOffset, heldAs: "in use rw-"))) {
            _ = try await host.allocate(pages: 2)
        }
        #expect(host.enclave.counters[.eaccept] == eacceptsBefore)
        #expect(host.stats.violations == [.doubleAccept(offset: held.byteOffset, heldAs: "in use rw-")])
        #expect(try host.cpu.read(secret).get() == 0x5EC12E7)
    }

    @Test func theHostRefusesToGiveBackPagesInUseAndTheyCannotBeRemoved() async throws {
        let daemon = try FakeDaemon()
        defer { daemon.stop() }
        let host = try await SimulatedHostTests.launch(daemon)
        defer { host.close() }
        let inUse = try await host.allocate(pages: 2)
        try #require(host.cpu.write(host.enclave.base + inUse.byteOffset, 7).get() == ())
        let eacceptsBefore = host.enclave.counters[.eaccept]
        // The daemon trims pages the enclave never freed and asks for them back.
        #expect(daemon.reclaim([inUse]) == 0)
        try await host.sync()
        await host.settle()
        #expect(host.enclave.counters[.eaccept] == eacceptsBefore)
        #expect(host.stats.violations == [.reclaimOfPageNotFreed(offset: inUse.byteOffset, heldAs: "in use rw-")])
        // Without the enclave's EACCEPT the pages cannot be removed, so they cannot come back as zeroes.
        var remove = RemovePagesParams(offset: inUse.byteOffset, length: inUse.byteLength)
        #expect(daemon.enclave?.removePages(&remove) == EPERM)
        #expect(host.enclave.pageInfo(offset: inUse.byteOffset).state == .trimModified)
    }

    @Test func theHostRefusesReusedPagesItNeverFreed() async throws {
        let daemon = try FakeDaemon()
        defer { daemon.stop() }
        let host = try await SimulatedHostTests.launch(daemon)
        defer { host.close() }
        let held = try await host.allocate(pages: 1)
        daemon.state.withLock { s in
            s.lie = { op, _ in
                guard case .allocate = op.request else { return nil }
                let reply = AllocateReply(granted: WireRange(held), permissions: .rw, reused: [WireRange(held)], fresh: [])
                return ResponseOperation(id: op.id, verb: .allocate, outcome: .success(.allocate(reply)))
            }
        }
        await #expect(throws: EnclaveHostError.refused(.reuseOfPageNotFreed(offset: held.byteOffset, heldAs: "in use rw-"))) {
            _ = try await host.allocate(pages: 1)
        }
        #expect(host.tracker.pages[held.first] == .inUse(.rw))
    }
}
