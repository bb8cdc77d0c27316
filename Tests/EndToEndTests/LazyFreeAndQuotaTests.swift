import EDMMClient
import EDMMCore
import EDMMProtocol
import EDMMSimHost
import Testing

extension EndToEnd {
    @Suite struct LazyFreeAndQuotas {
        @Test func reusingFreedPagesCostsNoEaccept() async throws {
            let daemon = try DaemonProcess()
            let host = try await daemon.host("lazy")
            defer { host.close() }
            let first = try await host.allocate(pages: 64)
            let afterFirst = host.enclave.counters
            #expect(host.countersSinceRegistration[.eaccept] == 64)
            _ = try await host.run(.free(first))
            let again = try await host.run(.allocate(pages: 64))
            #expect(again == .allocated(first, freshPages: 0, reusedPages: 64))
            let spent = host.enclave.counters.since(afterFirst)
            #expect(spent[.eaccept] == 0)
            #expect(spent[.eaug] == 0)
            await expectLedgersMatch([host])
            #expect(daemon.stop() == 0)
        }

        @Test func anEnclaveQuotaRefusalCarriesTheNumbers() async throws {
            let daemon = try DaemonProcess(config: "[quota]\nenclave = \"1MiB\"\n")
            let host = try await daemon.host("quota")
            defer { host.close() }
            try await host.allocate(pages: 200)
            let refusal = WireError.Detail.quota(scope: .enclave, askedPages: 100, usedPages: 200, limitPages: 256)
            await #expect {
                try await host.allocate(pages: 100)
            } throws: { error in
                guard case EnclaveHostError.client(.daemon(let wire)) = error else { return false }
                return wire.code == .quotaExceeded && wire.detail == refusal
            }
            await expectLedgersMatch([host])
            #expect(daemon.stop() == 0)
        }

        @Test func aUidQuotaCountsEveryEnclaveOfTheUid() async throws {
            let daemon = try DaemonProcess(config: "[quota]\nuid = \"2MiB\"\n")
            let first = try await daemon.host("uid-a")
            defer { first.close() }
            let second = try await daemon.host("uid-b")
            defer { second.close() }
            try await first.allocate(pages: 300)
            let refusal = WireError.Detail.quota(scope: .uid, askedPages: 300, usedPages: 300, limitPages: 512)
            await #expect {
                try await second.allocate(pages: 300)
            } throws: { error in
                guard case EnclaveHostError.client(.daemon(let wire)) = error else { return false }
                return wire.code == .quotaExceeded && wire.detail == refusal
            }
            await expectLedgersMatch([first, second])
            #expect(daemon.stop() == 0)
        }
    }
}
