import EDMMCore
import EDMMProtocol
import Testing

@testable import EDMMDaemon

/// The socket loop serves a request that needs no ioctl on its own thread when the enclave is
/// idle, hands every other to the enclave's queue, never waits for a busy enclave, and keeps the
/// replies of one enclave in request order across both paths (docs/protocol.md).
@Suite struct FastPathTests {
    private struct Paths: Equatable {
        var inline: UInt64
        var handedOff: UInt64
    }

    private func paths(_ client: TestClient) throws -> Paths {
        let status = try client.status()
        return Paths(inline: status.counter("fast_path_inline") ?? 0, handedOff: status.counter("fast_path_handed_off") ?? 0)
    }

    /// Reads until every one of `ids` is answered; returns them in the order their replies came.
    private func arrivalOrder(of ids: [UInt64], on client: TestClient) throws -> [UInt64] {
        while !Set(ids).isSubset(of: client.unclaimedResponses.map(\.id)) {
            guard try client.receiveMessage() != nil else { throw TestClient.Failure.unexpected("the connection closed") }
        }
        return client.unclaimedResponses.map(\.id).filter(ids.contains)
    }

    @Test func allocateAndFreeOfAnIdleEnclaveAreServedInlineAndNeverHandedOff() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let (handle, _) = try client.register(enclave)
            let before = try paths(client)
            for _ in 0..<10 {
                let grant = try client.allocate(AllocateRequest(enclave: handle, length: 4096))
                #expect(grant.granted.length == 4096)
                enclave.acceptFresh(grant.fresh)
                _ = try client.done(.free(RangeRequest(enclave: handle, range: grant.granted)))
            }
            let after = try paths(client)
            // The REGISTER's own queue item may still hold the enclave when the first ALLOCATE
            // arrives; every later request finds it idle.
            #expect(after.inline + after.handedOff == before.inline + before.handedOff + 20)
            #expect(after.inline >= before.inline + 19)
        }
    }

    @Test func requestsThatMayRunAnIoctlAreHandedToTheEnclavesQueue() async throws {
        try await withDaemon({ $0.batch.windowMicros = 100_000 }) { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let (handle, registered) = try client.register(enclave, preheatPages: 2)
            enclave.acceptFresh(registered.preheat)
            let before = try paths(client)
            let ids = try client.send([.trim(RangeRequest(enclave: handle, range: pages(0, 1))), .sync(handle), .stats(handle)])
            #expect(try client.responses(to: ids).allSatisfy { $0.error == nil })
            let after = try paths(client)
            #expect(after == Paths(inline: before.inline, handedOff: before.handedOff + 3))
        }
    }

    /// A request handed to the enclave's queue is still waiting there while the enclave's state
    /// is free (the queue has not run yet): a later request that could run inline goes behind it,
    /// so its reply cannot overtake the earlier one.
    @Test func aRequestArrivingWhileAnEarlierOneWaitsInTheQueueIsHandedOffBehindIt() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let (handle, _) = try client.register(enclave)
            let viewer = try daemon.connect()
            let queue = try #require(daemon.daemon.core.registry.lookup(handle)).queue
            queue.suspend()
            let before = try paths(viewer)
            let ids = try client.send([.stats(handle)]) + client.send([.allocate(AllocateRequest(enclave: handle, length: 4096))])
            #expect(try eventually { try paths(viewer) == Paths(inline: before.inline, handedOff: before.handedOff + 2) })
            queue.resume()
            #expect(try arrivalOrder(of: ids, on: client) == ids)
            #expect(try client.responses(to: ids).allSatisfy { $0.error == nil })
        }
    }

    /// A stopped client holds the enclave's simulated EPC lock, so the flush its batch window
    /// starts on the enclave's queue waits: later requests of that enclave find the enclave busy
    /// and are handed off (the loop never waits), other enclaves keep being served inline, and
    /// once the lock is free every reply of the enclave leaves in request order, those handed off
    /// before the later inline ones.
    @Test func aBusyEnclavesRequestsAreHandedOffAndTheirRepliesStayInOrderWithLaterInlineOnes() async throws {
        try await withDaemon({ $0.batch.windowMicros = 1_000 }) { daemon in
            let owner = try daemon.connect()
            let machine = try daemon.machine(from: owner)
            let enclave = try TestEnclave(machine: machine)
            let (handle, _) = try owner.registerWithAcceptedPages(enclave)
            let bystander = try daemon.connect()
            let other = try TestEnclave(machine: machine, base: 1 << 34)
            let (otherHandle, _) = try bystander.register(other)

            let holder = try StoppedLockHolder(machine: machine, enclave: enclave.enclave, holding: .enclave)
            // The TRIM is queued at once; the window's flush then runs EMODT on the enclave's
            // queue, which waits for the lock, with nothing handed off still pending.
            var ids = try owner.send([.trim(RangeRequest(enclave: handle, range: pages(0, 1)))])
            try await Task.sleep(for: .milliseconds(100))
            let before = try paths(bystander)
            for _ in 0..<3 { ids += try owner.send([.allocate(AllocateRequest(enclave: handle, length: 4096))]) }

            // Meanwhile another client's enclave is served inline, within a bound.
            for _ in 0..<5 {
                let reply = try bystander.call(.allocate(AllocateRequest(enclave: otherHandle, length: 4096)), timeout: .seconds(3))
                #expect(reply.error == nil)
            }
            #expect(try eventually(timeout: .seconds(5)) { try paths(bystander).handedOff >= before.handedOff + 3 })
            let during = try paths(bystander)
            #expect(during.inline >= before.inline + 5)
            #expect(owner.unclaimedResponses.isEmpty, "nothing of the stuck enclave was answered while its lock was held")

            #expect(holder.resume() == #"{"ok":true}"#)
            // Sent while the handed-off ones may still be on their way: the loop serves these
            // inline as soon as the queue is idle, and their replies must still come after.
            for _ in 0..<5 { ids += try owner.send([.allocate(AllocateRequest(enclave: handle, length: 4096))]) }
            #expect(try arrivalOrder(of: ids, on: owner) == ids)
            #expect(try owner.responses(to: ids).allSatisfy { $0.error == nil })
        }
    }
}
