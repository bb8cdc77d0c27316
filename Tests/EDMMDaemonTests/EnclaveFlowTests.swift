import EDMMCore
import EDMMProtocol
import SGXDevice
import SGXSimulator
import Testing

/// The verbs on one simulated enclave, driven like an enclave host drives them, with the ledger
/// checked against the simulated EPCM after each scenario.
@Suite struct EnclaveFlowTests {
    @Test func registerAllocateTrimAndRemoveLeaveTheLedgerEqualToTheEPCM() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let (handle, registered) = try client.register(enclave, preheatPages: 4)
            #expect(registered.device == .simulated)
            #expect(registered.preheat.reduce(0) { $0 + $1.length } == 4 * 4096)
            #expect(enclave.acceptFresh(registered.preheat) == 0)

            let grant = try client.allocate(AllocateRequest(enclave: handle, length: 8 * 4096))
            #expect(grant.granted.length == 8 * 4096)
            #expect(grant.reused.isEmpty)
            #expect(enclave.acceptFresh(grant.fresh) == 0)

            let trimmed = try client.done(.trim(RangeRequest(enclave: handle, range: grant.granted)))
            #expect(trimmed.pages == 8)
            #expect(enclave.acceptTrim([grant.granted]) == 0)
            let removed = try client.done(.trimAccepted(RangeRequest(enclave: handle, range: grant.granted)))
            #expect(removed.pages == 8)
            #expect(enclave.enclave.pageInfo(offset: grant.granted.offset).state == .hole)

            let stats = try client.stats(handle)
            #expect(stats.summary.committedPages == 4)
            #expect(stats.counter("ledger_epcm_mismatches") == 0)
            #expect(stats.counter("ledger_epcm_checked_pages") == 4)
            #expect(stats.counter("requests_trim_ok") == 1)
            #expect(stats.counter("ioctl_remove_pages_pages") == 8)
        }
    }

    @Test func freedPagesAreReusedWithoutAnotherEACCEPT() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let (handle, _) = try client.register(enclave)
            let first = try client.allocate(AllocateRequest(enclave: handle, length: 16 * 4096))
            enclave.acceptFresh(first.fresh)
            let freed = try client.done(.free(RangeRequest(enclave: handle, range: first.granted)))
            #expect(freed.ioctls == 0)
            let accepts = enclave.enclave.counters[.eaccept]

            let second = try client.allocate(AllocateRequest(enclave: handle, length: 16 * 4096))
            #expect(second.granted == first.granted)
            #expect(second.reused == [first.granted])
            #expect(second.fresh.isEmpty)
            #expect(enclave.enclave.counters[.eaccept] == accepts)
            // The reused pages are usable as they are.
            #expect(throws: Never.self) { try enclave.cpu.write(enclave.base + first.granted.offset, 42).get() }
            #expect(try client.stats(handle).counter("ledger_epcm_mismatches") == 0)
        }
    }

    @Test func restrictThenAcceptLeavesTheNarrowerPermissionsInLedgerAndEPCM() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let (handle, _) = try client.register(enclave)
            let grant = try client.allocate(AllocateRequest(enclave: handle, length: 4 * 4096))
            enclave.acceptFresh(grant.fresh)
            _ = try client.done(.restrict(PermissionsRequest(enclave: handle, range: grant.granted, permissions: .read)))
            #expect(try client.stats(handle).counter("ledger_epcm_mismatches") == 0)
            #expect(enclave.acceptRestrict([grant.granted], .read) == 0)
            #expect(enclave.enclave.pageInfo(offset: grant.granted.offset).permissions == .read)
            #expect(try client.stats(handle).counter("ledger_epcm_mismatches") == 0)
        }
    }

    @Test func relaxRecordsPermissionsTheEnclaveExtendedWithEMODPE() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let (handle, _) = try client.register(enclave)
            let grant = try client.allocate(AllocateRequest(enclave: handle, length: 4096))
            enclave.acceptFresh(grant.fresh)
            #expect(enclave.cpu.emodpe(enclave.base + grant.granted.offset, flags: [.r, .w, .x]) == .success)
            // Before RELAX the ledger still says RW: the comparison catches the difference.
            #expect(try client.stats(handle).counter("ledger_epcm_mismatches") == 1)
            let relaxed = try client.done(.relax(PermissionsRequest(enclave: handle, range: grant.granted, permissions: .execute)))
            #expect(relaxed.ioctls == 0)
            #expect(try client.stats(handle).counter("ledger_epcm_mismatches") == 0)
        }
    }

    @Test func makeTCSConvertsAPageThatTheEnclaveThenAccepts() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let (handle, _) = try client.register(enclave)
            let grant = try client.allocate(AllocateRequest(enclave: handle, length: 4096))
            enclave.acceptFresh(grant.fresh)
            _ = try client.done(.makeTCS(RangeRequest(enclave: handle, range: grant.granted)))
            #expect(enclave.enclave.pageInfo(offset: grant.granted.offset).state == .tcsModified)
            let stats = try client.stats(handle)
            #expect(stats.summary.tcsPages == 1)
            #expect(stats.counter("ledger_epcm_mismatches") == 0)
        }
    }

    @Test func syncAnswersAfterEveryEarlierRequestOfTheEnclave() async throws {
        try await withDaemon({ $0.batch.windowMicros = 1_000_000 }) { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let (handle, _) = try client.register(enclave)
            let grant = try client.allocate(AllocateRequest(enclave: handle, length: 4 * 4096))
            enclave.acceptFresh(grant.fresh)
            let ids = try client.send([
                .trim(RangeRequest(enclave: handle, range: pages(grant.granted.offset / 4096, 2))),
                .trim(RangeRequest(enclave: handle, range: pages(grant.granted.offset / 4096 + 2, 2))),
                .sync(handle),
            ])
            let replies = try client.responses(to: ids)
            #expect(replies.allSatisfy { $0.error == nil })
            #expect(replies[2].done?.batchedRequests == 2)
            #expect(replies[0].done?.ioctls == 1)
            #expect(replies[0].done?.batchedRequests == 2)
        }
    }
}
