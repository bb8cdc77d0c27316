import EDMMCore
import EDMMProtocol
import Glibc
import SGXSimulator
import Testing

/// TRIM, TRIM_ACCEPTED and RESTRICT requests of every connection of an enclave share ioctls; the
/// simulator's own ioctl counters are the evidence.
@Suite struct BatchingTests {
    /// Four connections of one enclave, each with an accepted range of `pagesEach` pages, adjacent.
    private func fourClients(_ daemon: TestDaemon, pagesEach: UInt64) throws -> (TestEnclave, EnclaveHandle, [TestClient], [WireRange]) {
        let owner = try daemon.connect()
        let enclave = try TestEnclave(machine: try daemon.machine(from: owner))
        let (handle, _) = try owner.register(enclave)
        let grant = try owner.allocate(AllocateRequest(enclave: handle, offset: 0, length: 4 * pagesEach * 4096))
        enclave.acceptFresh(grant.fresh)
        var clients = [owner]
        for _ in 1..<4 {
            let client = try daemon.connect()
            _ = try client.expect(.attach(handle))
            clients.append(client)
        }
        let ranges = (0..<4).map { pages(UInt64($0) * pagesEach, pagesEach) }
        return (enclave, handle, clients, ranges)
    }

    @Test func trimsOfSeveralConnectionsBecomeOneIoctl() async throws {
        try await withDaemon({
            $0.batch.windowMicros = 1_000_000
            $0.batch.maxPages = 8
        }) { daemon in
            let (enclave, handle, clients, ranges) = try fourClients(daemon, pagesEach: 2)
            let before = enclave.enclave.counters[.ioctlModifyTypes]
            // The fourth request fills the window to max_pages and flushes it.
            let ids = try zip(clients, ranges).map { client, range in
                try client.send([.trim(RangeRequest(enclave: handle, range: range))])[0]
            }
            let replies = try zip(clients, ids).map { client, id in try client.response(to: id) }
            #expect(replies.allSatisfy { $0.error == nil })
            #expect(replies.allSatisfy { $0.done?.batchedRequests == 4 && $0.done?.ioctls == 1 })
            #expect(enclave.enclave.counters[.ioctlModifyTypes] - before == 1)

            enclave.acceptTrim(ranges)
            let removeBefore = enclave.enclave.counters[.ioctlRemovePages]
            let removeIDs = try zip(clients, ranges).map { client, range in
                try client.send([.trimAccepted(RangeRequest(enclave: handle, range: range))])[0]
            }
            let removed = try zip(clients, removeIDs).map { client, id in try client.response(to: id) }
            #expect(removed.allSatisfy { $0.done?.batchedRequests == 4 })
            #expect(enclave.enclave.counters[.ioctlRemovePages] - removeBefore == 1)
            #expect(try clients[0].stats(handle).counter("ledger_epcm_mismatches") == 0)
            // One contiguous run in the TRIM flush, one in the REMOVE flush.
            #expect(try clients[0].stats(handle).counter("ioctl_lower_bound") == 2)
        }
    }

    @Test func withoutBatchingEveryRequestIsItsOwnIoctl() async throws {
        try await withDaemon({ $0.batch.enabled = false }) { daemon in
            let (enclave, handle, clients, ranges) = try fourClients(daemon, pagesEach: 2)
            let before = enclave.enclave.counters[.ioctlModifyTypes]
            let ids = try zip(clients, ranges).map { client, range in
                try client.send([.trim(RangeRequest(enclave: handle, range: range))])[0]
            }
            let replies = try zip(clients, ids).map { client, id in try client.response(to: id) }
            #expect(replies.allSatisfy { $0.done?.batchedRequests == 1 && $0.done?.ioctls == 1 })
            #expect(enclave.enclave.counters[.ioctlModifyTypes] - before == 4)
            #expect(try clients[0].status().batching == false)
            // Each request flushed alone: four flushes of one run each, so no ioctl was wasted.
            #expect(try clients[0].stats(handle).counter("ioctl_lower_bound") == 4)
        }
    }

    @Test func restrictionsToDifferentPermissionsAreNotMerged() async throws {
        try await withDaemon({ $0.batch.windowMicros = 1_000_000 }) { daemon in
            let (enclave, handle, clients, ranges) = try fourClients(daemon, pagesEach: 1)
            let before = enclave.enclave.counters[.ioctlRestrictPermissions]
            let ids = try clients[0].send([
                .restrict(PermissionsRequest(enclave: handle, range: ranges[0], permissions: .read)),
                .restrict(PermissionsRequest(enclave: handle, range: ranges[1], permissions: .read)),
                .restrict(PermissionsRequest(enclave: handle, range: ranges[2], permissions: .none)),
                .sync(handle),
            ])
            let replies = try clients[0].responses(to: ids)
            #expect(replies.allSatisfy { $0.error == nil })
            #expect(enclave.enclave.counters[.ioctlRestrictPermissions] - before == 2)
            #expect(replies[3].done?.batchedRequests == 3)
            // Pages 0-1 to read are one run, page 2 to none another: the bound is the two ioctls run.
            #expect(try clients[0].stats(handle).counter("ioctl_lower_bound") == 2)
        }
    }

    @Test func aRequestQueuedAfterASyncFlushIsFlushedByItsOwnWindow() async throws {
        try await withDaemon({ $0.batch.windowMicros = 20_000 }) { daemon in
            let owner = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: owner))
            let (handle, _) = try owner.register(enclave)
            let grant = try owner.allocate(AllocateRequest(enclave: handle, offset: 0, length: 2 * 4096))
            enclave.acceptFresh(grant.fresh)
            // SYNC flushes the open window; the next TRIM must open a window of its own.
            let first = try owner.send([.trim(RangeRequest(enclave: handle, range: pages(0, 1))), .sync(handle)])
            #expect(try owner.responses(to: first).allSatisfy { $0.error == nil })
            let second = try owner.send([.trim(RangeRequest(enclave: handle, range: pages(1, 1)))])[0]
            #expect(try owner.response(to: second).done?.ioctls == 1)
        }
    }

    @Test func aFailingPageFailsOnlyTheRequestThatHoldsItAndTheRestAreReplanned() async throws {
        try await withDaemon({
            $0.batch.windowMicros = 1_000_000
            $0.batch.maxPages = 10
        }) { daemon in
            let owner = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: owner))
            let (handle, _) = try owner.register(enclave)
            let grant = try owner.allocate(AllocateRequest(enclave: handle, offset: 0, length: 10 * 4096))
            // Pages 6 and 7 are never accepted: EMODT finds holes there.
            enclave.acceptFresh([pages(0, 6), pages(8, 2)])
            let others = try (0..<2).map { _ in
                let client = try daemon.connect()
                _ = try client.expect(.attach(handle))
                return client
            }
            _ = grant
            let a = try owner.send([.trim(RangeRequest(enclave: handle, range: pages(0, 4)))])[0]
            let b = try others[0].send([.trim(RangeRequest(enclave: handle, range: pages(4, 4)))])[0]
            let c = try others[1].send([.trim(RangeRequest(enclave: handle, range: pages(8, 2)))])[0]
            let replyA = try owner.response(to: a)
            let replyB = try others[0].response(to: b)
            let replyC = try others[1].response(to: c)
            #expect(replyA.error == nil)
            #expect(replyC.error == nil)
            #expect(replyB.error?.code == .kernelError)
            guard case .kernel(let ioctl, let errno, let count, _) = replyB.error?.detail else {
                Issue.record("expected kernel detail, got \(String(describing: replyB.error))")
                return
            }
            #expect(ioctl == .modifyTypes)
            #expect(errno == EFAULT)
            #expect(count == 2 * 4096)
            let stats = try owner.stats(handle)
            #expect(stats.summary.trimmingPages == 8)
            #expect(stats.summary.committedPages == 2)
            #expect(stats.counter("ledger_epcm_mismatches") == 0)
            #expect(stats.counter("ledger_epcm_unaccepted_pages") == 2)
        }
    }
}
