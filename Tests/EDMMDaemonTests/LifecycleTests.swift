import EDMMCore
import EDMMProtocol
import Glibc
import SGXSimulator
import Testing

/// Connections that go away take their enclaves with them: descriptors closed, accounting returned.
@Suite struct LifecycleTests {
    @Test func aClosedConnectionReturnsItsAccountingExactlyAndClosesTheEnclaveDescriptor() async throws {
        try await withDaemon { daemon in
            let observer = try daemon.connect()
            let before = try observer.status()
            var client: TestClient? = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client!))
            let (handle, _) = try client!.register(enclave, preheatPages: 8)
            let grant = try client!.allocate(AllocateRequest(enclave: handle, length: 32 * 4096))
            enclave.acceptFresh(grant.fresh)
            _ = try client!.done(.free(RangeRequest(enclave: handle, range: pages(grant.granted.offset / 4096, 8))))
            #expect(try observer.status().epcCommittedBytes == before.epcCommittedBytes + 40 * 4096)
            #expect(descriptorsOpen(onSameFileAs: enclave.fd) == 2)

            let clock = ContinuousClock()
            let closedAt = clock.now
            client = nil
            let unregistered = try eventually {
                let status = try observer.status()
                return status.enclaves == before.enclaves && status.epcCommittedBytes == before.epcCommittedBytes
            }
            let elapsed = clock.now - closedAt
            #expect(unregistered)
            print("LifecycleTests: enclave unregistered \(elapsed) after its connection closed (bound: 100 ms)")
            #expect(descriptorsOpen(onSameFileAs: enclave.fd) == 1)
            #expect(try observer.expectError(.stats(handle)).code == .unknownEnclave)
        }
    }

    @Test func theDaemonKeepsNoDeadEnclaveAlive() async throws {
        try await withDaemon { daemon in
            let observer = try daemon.connect()
            let machine = try daemon.machine(from: observer)
            let alive = machine.stats.aliveEnclaves
            var client: TestClient? = try daemon.connect()
            var enclave: TestEnclave? = try TestEnclave(machine: machine)
            _ = try client!.register(enclave!, preheatPages: 4)
            #expect(machine.stats.aliveEnclaves == alive + 1)
            client = nil
            #expect(try eventually { try observer.status().enclaves == 0 })
            // The host process's own handle is all that kept it; closing it releases the EPC.
            enclave = nil
            #expect(machine.stats.aliveEnclaves == alive)
        }
    }

    @Test func anAttachedConnectionKeepsTheEnclaveAndReceivesItsNoticesWhenTheRegistrarLeaves() async throws {
        try await withDaemon { daemon in
            var registrar: TestClient? = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: registrar!))
            let (handle, _) = try registrar!.register(enclave)
            let thread = try daemon.connect()
            _ = try thread.expect(.attach(handle))
            let grant = try thread.allocate(AllocateRequest(enclave: handle, length: 8 * 4096))
            enclave.acceptFresh(grant.fresh)
            _ = try thread.done(.free(RangeRequest(enclave: handle, range: grant.granted)))
            registrar = nil
            #expect(try eventually { try thread.stats(handle).summary.connections == 1 })
            let admin = try daemon.connect()
            _ = try admin.expect(.reclaim(ReclaimRequest(enclave: handle)))
            guard case .reclaim(let notice) = try thread.nextPush().push else {
                Issue.record("expected the RECLAIM notice on the attached connection")
                return
            }
            #expect(notice.ranges == [grant.granted])
        }
    }

    @Test func unregisterFlushesQueuedWorkFirst() async throws {
        try await withDaemon({ $0.batch.windowMicros = 1_000_000 }) { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let (handle, _) = try client.register(enclave)
            let grant = try client.allocate(AllocateRequest(enclave: handle, length: 4 * 4096))
            enclave.acceptFresh(grant.fresh)
            let ids = try client.send([.trim(RangeRequest(enclave: handle, range: grant.granted)), .unregister(handle)])
            let replies = try client.responses(to: ids)
            #expect(replies[0].done?.pages == 4)
            #expect(replies[1].done?.pages == 4)
            #expect(enclave.enclave.pageInfo(offset: grant.granted.offset).state == .trimModified)
        }
    }
}
