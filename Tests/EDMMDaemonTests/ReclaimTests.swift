import EDMMCore
import EDMMProtocol
import SGXSimulator
import Testing

/// Pool reclaim: by threshold, under EPC pressure (least recently active enclaves first), and on an
/// administrator's request; each ends in RECLAIM_NOTICE, EACCEPT, TRIM_ACCEPTED, REMOVE_PAGES.
@Suite struct ReclaimTests {
    /// An enclave with `pooled` of its `committed` accepted pages freed into the pool.
    private func enclaveWithPool(
        _ daemon: TestDaemon, base: UInt64, committed: UInt64, pooled: UInt64
    ) throws -> (TestClient, TestEnclave, EnclaveHandle) {
        let client = try daemon.connect()
        let enclave = try TestEnclave(machine: try daemon.machine(from: client), base: base)
        let (handle, _) = try client.register(enclave, label: "pool-\(base >> 32)")
        let grant = try client.allocate(AllocateRequest(enclave: handle, offset: 0, length: committed * 4096))
        enclave.acceptFresh(grant.fresh)
        if pooled > 0 { _ = try client.done(.free(RangeRequest(enclave: handle, range: pages(0, pooled)))) }
        return (client, enclave, handle)
    }

    /// Handles a RECLAIM notice the way an enclave host does and returns it.
    private func honour(_ client: TestClient, _ enclave: TestEnclave, _ handle: EnclaveHandle) throws -> ReclaimNotice? {
        guard case .reclaim(let notice) = try client.nextPush().push else { return nil }
        #expect(enclave.acceptTrim(notice.ranges) == 0)
        for range in notice.ranges { _ = try client.done(.trimAccepted(RangeRequest(enclave: handle, range: range))) }
        return notice
    }

    @Test func underEPCPressureTheIdlestPoolsAreReclaimedFirst() async throws {
        try await withDaemon({
            $0.simulator.epcBytes = 1 << 20  // 256 pages
            $0.pressure.highWatermarkPercent = 50
            $0.pressure.lowWatermarkPercent = 25
            $0.pressure.checkIntervalMillis = 10
        }) { daemon in
            let (idleClient, idle, idleHandle) = try enclaveWithPool(daemon, base: 1 << 32, committed: 60, pooled: 60)
            let (busyClient, busy, busyHandle) = try enclaveWithPool(daemon, base: 2 << 32, committed: 60, pooled: 60)
            // A third enclave pushes EPC use to 146 of 256 pages (140 enclave pages, and a SECS
            // and a VA page per enclave), past the high watermark (128).
            let third = try enclaveWithPool(daemon, base: 3 << 32, committed: 20, pooled: 0)
            defer { withExtendedLifetime(third) {} }
            let idleNotice = try honour(idleClient, idle, idleHandle)
            #expect(idleNotice?.reason == .epcPressure)
            #expect(idleNotice?.ranges.reduce(0) { $0 + $1.length } == 60 * 4096)
            // Down to the low watermark (64 pages) the busier pool gives only what is still missing.
            let busyNotice = try honour(busyClient, busy, busyHandle)
            #expect(busyNotice?.ranges.reduce(0) { $0 + $1.length } == 22 * 4096)
            #expect(try idleClient.stats(idleHandle).summary.pooledPages == 0)
            #expect(try busyClient.stats(busyHandle).summary.pooledPages == 38)
            #expect(try idleClient.stats(idleHandle).counter("ledger_epcm_mismatches") == 0)
            #expect(try busyClient.stats(busyHandle).counter("ledger_epcm_mismatches") == 0)
        }
    }

    @Test func aPoolOverItsThresholdIsReclaimedDownToTheTarget() async throws {
        try await withDaemon({
            $0.pool.thresholdPercent = 25
            $0.pressure.checkIntervalMillis = 10
        }) { daemon in
            // 400 of 600 pages pooled: over 25 %, reclaimed down to max(256 pages, 10 %).
            let (client, enclave, handle) = try enclaveWithPool(daemon, base: 1 << 32, committed: 600, pooled: 400)
            let notice = try honour(client, enclave, handle)
            #expect(notice?.reason == .poolThreshold)
            #expect(notice?.ranges.reduce(0) { $0 + $1.length } == 144 * 4096)
            let stats = try client.stats(handle)
            #expect(stats.summary.pooledPages == 256)
            #expect(stats.counter("reclaimed_pages") == 144)
        }
    }

    @Test func anAdministratorReclaimsAWholePoolOnRequest() async throws {
        try await withDaemon { daemon in
            let (client, enclave, handle) = try enclaveWithPool(daemon, base: 1 << 32, committed: 40, pooled: 30)
            let admin = try daemon.connect()
            guard case .reclaim(let reply) = try admin.expect(.reclaim(ReclaimRequest(enclave: handle))) else { return }
            #expect(reply.scheduledPages == 30)
            #expect(reply.enclaves == 1)
            let notice = try honour(client, enclave, handle)
            #expect(notice?.reason == .admin)
            #expect(try client.stats(handle).summary.pooledPages == 0)
            #expect(try client.stats(handle).summary.committedPages == 10)
        }
    }

    @Test func anAdministratorsTargetIsTakenFromTheIdlestEnclavesFirst() async throws {
        try await withDaemon { daemon in
            let (firstClient, first, firstHandle) = try enclaveWithPool(daemon, base: 1 << 32, committed: 20, pooled: 20)
            let (secondClient, _, secondHandle) = try enclaveWithPool(daemon, base: 2 << 32, committed: 20, pooled: 20)
            let admin = try daemon.connect()
            guard case .reclaim(let reply) = try admin.expect(.reclaim(ReclaimRequest(targetPages: 25))) else { return }
            #expect(reply.scheduledPages == 25)
            #expect(reply.enclaves == 2)
            #expect(try honour(firstClient, first, firstHandle)?.ranges.reduce(0) { $0 + $1.length } == 20 * 4096)
            #expect(try secondClient.stats(secondHandle).summary.pooledPages == 15)
        }
    }
}
