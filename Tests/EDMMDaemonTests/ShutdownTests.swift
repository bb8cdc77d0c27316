import EDMMCore
import EDMMProtocol
import Glibc
import Testing

/// Shutdown (SIGTERM in the executable): queued work is finished and answered, clients are told,
/// their replies written out, and the socket removed.
@Suite struct ShutdownTests {
    @Test func shutdownAnswersQueuedWorkSendsTheNoticeAndClosesEveryConnection() async throws {
        let daemon = try TestDaemon { $0.batch.windowMicros = 1_000_000 }
        let client = try daemon.connect()
        let enclave = try TestEnclave(machine: try daemon.machine(from: client))
        let (handle, _) = try client.register(enclave)
        let grant = try client.allocate(AllocateRequest(enclave: handle, length: 4 * 4096))
        enclave.acceptFresh(grant.fresh)
        let id = try client.send([.trim(RangeRequest(enclave: handle, range: grant.granted))])[0]
        // The trim waits in its batch window while the daemon stops.
        #expect(try eventually { try client.stats(handle).counter("queued_requests") == 1 })
        await daemon.stop()
        #expect(try client.response(to: id).done?.pages == 4)
        guard case .shutdown(let notice) = try client.nextPush().push else {
            Issue.record("expected SHUTDOWN_NOTICE")
            return
        }
        #expect(notice.restarting == false)
        #expect(client.waitForClose())
        #expect(access(daemon.socketPath, F_OK) != 0)
        #expect(descriptorsOpen(onSameFileAs: enclave.fd) == 1)
        #expect(enclave.enclave.pageInfo(offset: grant.granted.offset).state == .trimModified)
    }

    @Test func aClientThatDoesNotReadIsClosedAtTheDrainDeadline() async throws {
        let daemon = try TestDaemon()
        let reader = try daemon.connect()
        let sleeper = try daemon.connect()
        // About 300 KiB of replies: more than the socket buffer holds, less than reply_queue.
        let ids = try sleeper.send(Array(repeating: .status, count: 200))
        #expect(try eventually { try reader.status().requestsTotal >= 200 })
        await daemon.daemon.shutdown(drainTimeout: .milliseconds(200))
        await daemon.stop()
        #expect(reader.waitForClose())
        // What was written before the deadline is still readable, then the connection ends.
        #expect(sleeper.waitForClose())
        #expect(sleeper.unclaimedResponses.count < ids.count)
    }
}
