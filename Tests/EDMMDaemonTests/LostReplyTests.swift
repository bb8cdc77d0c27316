import EDMMCore
import EDMMProtocol
import Testing

/// Every request queued for a flush is answered, whatever flushed the queue before it. Found by
/// `edmm-sim soak`: a flush that the window did not start (SYNC, or a request that needs queued
/// work done first) stopped the window's timer but left the window open, so the next request
/// joined a window that no timer would ever close, and its client waited forever.
@Suite struct LostReplyTests {
    private func enclaveWithPages(_ daemon: TestDaemon, _ count: UInt64) throws -> (TestClient, TestEnclave, EnclaveHandle) {
        let client = try daemon.connect()
        let enclave = try TestEnclave(machine: try daemon.machine(from: client))
        let (handle, registered) = try client.register(enclave, preheatPages: count)
        enclave.acceptFresh(registered.preheat)
        return (client, enclave, handle)
    }

    @Test func aRequestQueuedAfterASyncInsideAnOpenWindowIsAnswered() async throws {
        try await withDaemon({ $0.batch.windowMicros = 100_000 }) { daemon in
            let (client, _, handle) = try enclaveWithPages(daemon, 2)
            let first = try client.send([.trim(RangeRequest(enclave: handle, range: pages(0, 1)))])[0]
            _ = try client.done(.sync(handle))
            #expect(try client.response(to: first).error == nil)
            let second = try client.send([.trim(RangeRequest(enclave: handle, range: pages(1, 1)))])[0]
            #expect(try client.response(to: second).error == nil)
        }
    }

    @Test func aRequestQueuedAfterAnEarlyFlushForQueuedWorkIsAnswered() async throws {
        try await withDaemon({ $0.batch.windowMicros = 100_000 }) { daemon in
            let (client, enclave, handle) = try enclaveWithPages(daemon, 3)
            // RESTRICT opens a window; FREE of the same page needs it done first and flushes early.
            let restrict = try client.send([.restrict(PermissionsRequest(enclave: handle, range: pages(0, 1), permissions: .read))])[0]
            try client.send([.free(RangeRequest(enclave: handle, range: pages(0, 1)))])
            #expect(try client.response(to: restrict).error == nil)
            enclave.acceptRestrict([pages(0, 1)], .read)
            let trim = try client.send([.trim(RangeRequest(enclave: handle, range: pages(2, 1)))])[0]
            #expect(try client.response(to: trim).error == nil)
        }
    }
}
