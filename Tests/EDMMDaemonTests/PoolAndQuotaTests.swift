import EDMMCore
import EDMMProtocol
import SGXSimulator
import Testing

/// The lazy-free pool and admission control: refusals carry the numbers, reused pages cost no
/// quota, and trims never fail for a policy reason.
@Suite struct PoolAndQuotaTests {
    @Test func anEnclaveQuotaRefusalCarriesAskedUsedAndLimit() async throws {
        try await withDaemon({ $0.quota.enclaveBytes = 16 * 4096 }) { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let (handle, registered) = try client.register(enclave)
            #expect(registered.quotaPages == 16)
            _ = try client.allocate(AllocateRequest(enclave: handle, length: 10 * 4096))
            let error = try client.expectError(.allocate(AllocateRequest(enclave: handle, length: 10 * 4096)))
            #expect(error.code == .quotaExceeded)
            #expect(error.detail == .quota(scope: .enclave, askedPages: 10, usedPages: 10, limitPages: 16))
        }
    }

    @Test func aUIDQuotaCountsEveryEnclaveOfThatUID() async throws {
        try await withDaemon({ $0.quota.uidBytes = 16 * 4096 }) { daemon in
            let client = try daemon.connect()
            let machine = try daemon.machine(from: client)
            let first = try TestEnclave(machine: machine)
            let second = try TestEnclave(machine: machine, base: 1 << 33)
            let (a, _) = try client.register(first, label: "a")
            let (b, _) = try client.register(second, label: "b")
            _ = try client.allocate(AllocateRequest(enclave: a, length: 10 * 4096))
            let error = try client.expectError(.allocate(AllocateRequest(enclave: b, length: 10 * 4096)))
            #expect(error.detail == .quota(scope: .uid, askedPages: 10, usedPages: 10, limitPages: 16))
        }
    }

    @Test func theMachineQuotaDefaultsToTheEPCAndCanBeLowered() async throws {
        try await withDaemon({ $0.quota.machineBytes = 32 * 4096 }) { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let (handle, _) = try client.register(enclave)
            let error = try client.expectError(.allocate(AllocateRequest(enclave: handle, length: 40 * 4096)))
            #expect(error.detail == .quota(scope: .machine, askedPages: 40, usedPages: 0, limitPages: 32))
        }
    }

    @Test func preheatAndAdoptedPagesCountAgainstQuotasAndARefusedRegisterChargesNothing() async throws {
        try await withDaemon({ $0.quota.enclaveBytes = 16 * 4096 }) { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let error = try client.expectError(enclave.registerRequest(preheatPages: 20), descriptors: [enclave.fd])
            #expect(error.detail == .quota(scope: .enclave, askedPages: 20, usedPages: 0, limitPages: 16))
            let status = try client.status()
            #expect(status.enclaves == 0)
            #expect(status.epcCommittedBytes == 0)
            #expect(descriptorsOpen(onSameFileAs: enclave.fd) == 1)
        }
    }

    @Test func reusedPoolPagesNeedNoQuotaAndTrimsNeverFailForQuota() async throws {
        try await withDaemon({ $0.quota.enclaveBytes = 16 * 4096 }) { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let (handle, _) = try client.register(enclave)
            let grant = try client.allocate(AllocateRequest(enclave: handle, length: 16 * 4096))
            enclave.acceptFresh(grant.fresh)
            _ = try client.done(.free(RangeRequest(enclave: handle, range: grant.granted)))
            let again = try client.allocate(AllocateRequest(enclave: handle, length: 16 * 4096))
            #expect(again.reused == [grant.granted])
            let trim = try client.call(.trim(RangeRequest(enclave: handle, range: grant.granted)))
            #expect(trim.error == nil)
        }
    }

    @Test func growthGrantsLargerChunksToAGrowingHeapInProportionToWhatItHolds() async throws {
        try await withDaemon({
            $0.growth.minChunkPages = 16
            $0.growth.maxChunkPages = 64
            $0.growth.heldPercent = 50
        }) { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let (handle, _) = try client.register(enclave)
            func allocate(pages: UInt64, growth: Bool) throws -> UInt64 {
                try client.allocate(AllocateRequest(enclave: handle, length: pages * 4096, allowGrowth: growth)).granted.length / 4096
            }
            #expect(try allocate(pages: 1, growth: true) == 1)  // holds nothing yet: no growth
            #expect(try allocate(pages: 63, growth: false) == 63)
            #expect(try allocate(pages: 1, growth: true) == 32)  // the chunk (32) is below 1 + 64 / 2
            #expect(try allocate(pages: 1, growth: true) == 49)  // 1 + 96 / 2 is below the chunk (64)
            #expect(try allocate(pages: 1, growth: false) == 1)
        }
    }

    @Test func withoutAPoolFreedPagesComeBackInAReclaimNotice() async throws {
        try await withDaemon({ $0.pool.enabled = false }) { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let (handle, _) = try client.register(enclave)
            let grant = try client.allocate(AllocateRequest(enclave: handle, length: 4 * 4096))
            enclave.acceptFresh(grant.fresh)
            let freed = try client.done(.free(RangeRequest(enclave: handle, range: grant.granted)))
            #expect(freed.pages == 4)
            guard case .reclaim(let notice) = try client.nextPush().push else {
                Issue.record("expected a RECLAIM_NOTICE")
                return
            }
            #expect(notice.enclave == handle)
            #expect(notice.reason == .poolThreshold)
            #expect(notice.ranges == [grant.granted])
            #expect(enclave.acceptTrim(notice.ranges) == 0)
            for range in notice.ranges { _ = try client.done(.trimAccepted(RangeRequest(enclave: handle, range: range))) }
            let stats = try client.stats(handle)
            #expect(stats.summary.committedPages + stats.summary.pooledPages + stats.summary.trimmingPages == 0)
            #expect(stats.counter("ledger_epcm_mismatches") == 0)
        }
    }
}
