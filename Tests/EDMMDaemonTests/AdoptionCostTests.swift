import EDMMCore
import EDMMProtocol
import Glibc
import SGXSimulator
import Testing

@testable import EDMMDaemon

/// REGISTER's `adopted` pages cost work in proportion to the pages that exist, never to the
/// address range they cover: before, adopting the whole ELRANGE of an empty 16 TiB simulated
/// enclave asked for each of its 2^32 pages, a minute of CPU for a 100-byte message (issue 10).
@Suite struct AdoptionCostTests {
    static let sixteenTiB: UInt64 = 1 << 44

    @Test func adoptingTheWholeELRANGEOfASixteenTiBEnclaveFindsItsFewPagesAtOnce() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client), base: Self.sixteenTiB, size: Self.sixteenTiB)
            // Three accepted pages: the first, one in the middle and the last of ELRANGE.
            let lastPage = Self.sixteenTiB / 4096 - 1
            for page in [0, lastPage / 2, lastPage] { #expect(enclave.acceptFresh([pages(page, 1)]) == 0) }
            let request = RegisterRequest(
                base: enclave.base, size: enclave.size, label: "huge", adopted: [WireRange(offset: 0, length: Self.sixteenTiB)])
            let started = ContinuousClock.now
            // A generous bound: the work is three leaf blocks of the page table, not 2^32 pages.
            let reply = try client.call(.register(request), descriptors: [enclave.fd], timeout: .seconds(20))
            guard case .success(.register(let registered)) = reply.outcome else {
                Issue.record("REGISTER failed: \(String(describing: reply.error))")
                return
            }
            #expect(ContinuousClock.now - started < .seconds(20))
            let stats = try client.stats(registered.enclave)
            #expect(stats.summary.committedPages == 3)
            #expect(stats.counter("ledger_epcm_mismatches") == 0)
        }
    }

    /// The walk stops once it found more pages than the quotas could admit: the REGISTER is refused
    /// (its asked figure then a lower bound) without reading the rest.
    @Test func adoptingMorePagesThanTheQuotaAdmitsIsRefusedOnceTheWalkPassesIt() async throws {
        try await withDaemon({ $0.quota.enclaveBytes = 16 * 4096 }) { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            #expect(enclave.acceptFresh([pages(0, 20)]) == 0)
            let request = RegisterRequest(
                base: enclave.base, size: enclave.size, label: "over", adopted: [WireRange(offset: 0, length: enclave.size)])
            let error = try client.expectError(.register(request), descriptors: [enclave.fd])
            #expect(error.detail == .quota(scope: .enclave, askedPages: 17, usedPages: 0, limitPages: 16))
        }
    }

    @Test func anAdoptionThatWouldReadMoreEntriesThanItsBudgetIsRefusedWithTheLimit() throws {
        let machine = try SimulatedMachine.create(.init(epcPages: 64, enclaveCapacity: 4))
        let enclave = try TestEnclave(machine: machine, base: Self.sixteenTiB, size: Self.sixteenTiB)
        for page in [0, 1 << 20, 1 << 30] as [UInt64] { #expect(enclave.acceptFresh([pages(page, 1)]) == 0) }
        let whole = [PageRange(first: 0, count: Self.sixteenTiB >> 12)]
        let runs = try AdoptedState.runs(whole, in: SimulatedEnclaveHandle(enclave.enclave), maxEntries: 3 * 512)
        #expect(runs.map(\.range.first) == [0, 1 << 20, 1 << 30])
        let error = try #require(throws: WireError.self) {
            try AdoptedState.runs(whole, in: SimulatedEnclaveHandle(enclave.enclave), maxEntries: 1000)
        }
        #expect(error.code == .invalidArgument)
        #expect(error.detail == .limit(limit: 1000, actual: 1024))
    }
}
