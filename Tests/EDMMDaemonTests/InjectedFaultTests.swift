import EDMMClient
import EDMMConfig
import EDMMCore
import EDMMProtocol
import EDMMSimHost
import Glibc
import SGXDevice
import SGXSimulator
import Testing

/// edmmd and the client library under the transient failures SGX2 hardware and the Linux driver
/// produce, injected by the simulated EPC: every one is either absorbed (EAGAIN and EBUSY resumed
/// from `count`, EACCEPT resumed after a failed EAUG) or reported precisely (an EPC page
/// conflict), and the ledger stays equal to the EPCM throughout.
@Suite struct InjectedFaultTests {
    /// A seed with which exactly draw `failing` of `kind` fails among the first `draws`.
    static func seed(failing: UInt64, of draws: UInt64, _ kind: SimulatorFaults.Kind) throws -> UInt64 {
        try #require(
            (UInt64(0)..<1_000_000).first { seed in
                let faults = SimulatorFaults(seed: seed, rates: [kind: 0.5])
                return (0..<draws).allSatisfy { faults.injects(kind, draw: $0) == ($0 == failing) }
            })
    }

    /// A daemon whose EMODT/EMODPR conflict on exactly opportunity `failing` of the first `draws`,
    /// and a client holding `pages` accepted pages on it.
    static func withConflictAt(
        _ failing: UInt64, of draws: UInt64, pages: UInt64,
        _ body: (TestDaemon, TestClient, TestEnclave, EnclaveHandle, AllocateReply) throws -> Void
    ) async throws {
        let seed = try Self.seed(failing: failing, of: draws, .pageConflict)
        try await withDaemon({
            $0.simulator.faults.pageConflict = 0.5
            $0.simulator.faults.seed = seed
        }) { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let (handle, _) = try client.register(enclave)
            let grant = try client.allocate(AllocateRequest(enclave: handle, length: pages * 4096))
            #expect(enclave.acceptFresh(grant.fresh) == 0)
            try body(daemon, client, enclave, handle, grant)
        }
    }

    @Test func aConflictIsReportedWithItsCountAndResultAndTheRestCanBeAskedAgain() async throws {
        // The trim's fourth EMODT meets an EACCEPT; the retry of the other four does not.
        try await Self.withConflictAt(3, of: 9, pages: 8) { _, client, enclave, handle, grant in
            let error = try client.expectError(.trim(RangeRequest(enclave: handle, range: grant.granted)))
            #expect(error.code == .kernelError)
            #expect(
                error.detail == .kernel(ioctl: .modifyTypes, errno: EFAULT, countBytes: 3 * 4096, result: SGXErrorCode.epcPageConflict))
            #expect(error.message.contains("SGX result 7 (SGX_EPC_PAGE_CONFLICT)"), "\(error.message)")
            // The three pages before the conflict are trimmed, in the ledger as in the EPCM.
            var stats = try client.stats(handle)
            #expect(stats.summary.trimmingPages == 3 && stats.summary.committedPages == 5)
            #expect(stats.counter("ledger_epcm_mismatches") == 0)
            #expect(stats.counter("ioctl_errors") == 1)

            let first = grant.granted.offset / 4096
            let done = pages(first, 3)
            let rest = pages(first + 3, 5)
            #expect(enclave.acceptTrim([done]) == 0)
            _ = try client.done(.trimAccepted(RangeRequest(enclave: handle, range: done)))
            _ = try client.done(.trim(RangeRequest(enclave: handle, range: rest)))
            #expect(enclave.acceptTrim([rest]) == 0)
            _ = try client.done(.trimAccepted(RangeRequest(enclave: handle, range: rest)))
            stats = try client.stats(handle)
            #expect(stats.summary.committedPages == 0 && stats.summary.trimmingPages == 0 && stats.summary.removingPages == 0)
            #expect(stats.counter("ledger_epcm_mismatches") == 0)
            #expect(enclave.enclave.presentPages == 0)
        }
    }

    @Test func aReclaimCutShortByAConflictStillNoticesThePagesItTrimmed() async throws {
        // The reclaim's fifth EMODT meets an EACCEPT.
        try await Self.withConflictAt(4, of: 5, pages: 10) { daemon, client, enclave, handle, grant in
            _ = try client.done(.free(RangeRequest(enclave: handle, range: grant.granted)))
            let admin = try daemon.connect()
            guard case .reclaim = try admin.expect(.reclaim(ReclaimRequest(enclave: handle))) else { return }
            guard case .reclaim(let notice) = try client.nextPush().push else {
                Issue.record("no RECLAIM notice")
                return
            }
            let first = grant.granted.offset / 4096
            #expect(notice.ranges == [pages(first, 4)])
            var stats = try client.stats(handle)
            #expect(stats.summary.pooledPages == 6 && stats.summary.trimmingPages == 4)
            #expect(stats.counter("ledger_epcm_mismatches") == 0)
            #expect(enclave.acceptTrim(notice.ranges) == 0)
            _ = try client.done(.trimAccepted(RangeRequest(enclave: handle, range: notice.ranges[0])))
            stats = try client.stats(handle)
            #expect(stats.summary.pooledPages == 6 && stats.summary.trimmingPages == 0 && stats.summary.removingPages == 0)
            #expect(stats.counter("reclaimed_pages") == 4)
            #expect(stats.counter("ledger_epcm_mismatches") == 0)
        }
    }

    @Test func aHostDoesAllItsWorkWithEveryFaultInjectedAndItsLedgerEqualsTheEPCM() async throws {
        try await withDaemon({
            $0.simulator.faults.loadBusy = 0.1
            $0.simulator.faults.reclaimerHoldsPage = 0.2
            $0.simulator.faults.eaugFailure = 0.1
            $0.simulator.faults.pageConflict = 0.05
            $0.simulator.faults.seed = 42
        }) { daemon in
            let host = try await SimulatedEnclaveHost.launch(
                socketPath: daemon.socketPath, blueprint: EnclaveBlueprint(label: "faults", prefaultFreshPages: false))
            defer { host.close() }
            var blocks: [PageRange] = []
            for _ in 0..<6 { blocks.append(try await host.allocate(pages: 32)) }
            for block in blocks[0..<2] { _ = try await host.run(.trim(block)) }
            _ = try await host.run(.restrict(blocks[2], to: .read))
            _ = try await host.run(.relax(blocks[2], to: .rw))
            for page in blocks[3].first..<blocks[3].first + 4 { _ = try await host.run(.makeTCS(page: page)) }
            _ = try await host.run(.free(blocks[4]))
            _ = try await host.allocate(pages: 16)
            _ = try await host.run(.trim(PageRange(first: blocks[3].first, count: 8)))
            let verification = await host.verify()
            #expect(verification.matches, "\(verification.problems) \(verification.epcm.examples) \(verification.ledger?.problems ?? [])")
            let stats = host.stats
            #expect(stats.eacceptsResumed > 0)
            #expect(stats.conflictRetries > 0)
            #expect(stats.asyncErrors.isEmpty, "\(stats.asyncErrors)")
            let ledger = try await host.connection.stats(host.handle)
            let retried = { (name: String) in ledger.counters.first { $0.name == name }?.value ?? 0 }
            #expect(retried("retries_eagain") > 0 && retried("retries_ebusy") > 0)
            #expect(host.machine.checkInvariants(enclaves: [host.enclave]).isEmpty)
        }
    }
}
