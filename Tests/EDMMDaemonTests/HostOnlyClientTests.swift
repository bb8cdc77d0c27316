import EDMMCore
import EDMMProtocol
import Glibc
import SGXSimulator
import Testing

/// REGISTER's options for a client that sees only the host side (an unmodified runtime through
/// libedmm-interpose): implicit commit, the kernel's answers, fresh-only grants.
@Suite struct HostOnlyClientTests {
    private static let hostOnly: RequestFlags = [.implicitCommit, .kernelErrors]

    private func register(_ client: TestClient, _ enclave: TestEnclave, _ flags: RequestFlags) throws -> EnclaveHandle {
        let reply = try client.call(enclave.registerRequest(label: "sdk"), flags: flags, descriptors: [enclave.fd])
        guard case .success(.register(let registered)) = reply.outcome else { throw TestClient.Failure.unexpected("\(reply.outcome)") }
        return registered.enclave
    }

    private func error(_ client: TestClient, _ request: Request) throws -> WireError { try client.expectError(request) }

    private func range(_ handle: EnclaveHandle, _ first: UInt64, _ count: UInt64) -> RangeRequest {
        RangeRequest(enclave: handle, range: pages(first, count))
    }

    @Test func withoutImplicitCommitATrimOfPagesTheEnclaveGrewByFaultIsAnInvalidPageState() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let handle = try register(client, enclave, [])
            #expect(enclave.acceptFresh([pages(16, 4)]) == 0)  // EACCEPT of a hole: the kernel EAUGs at the fault
            #expect(try error(client, .trim(range(handle, 16, 4))).code == .invalidPageState)
        }
    }

    @Test func implicitCommitRecordsTheEPCMsPagesThenTrimsThemAndSaysTheFigureIsALowerBound() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let handle = try register(client, enclave, Self.hostOnly)
            #expect(enclave.acceptFresh([pages(16, 4)]) == 0)
            let done = try client.done(.trim(range(handle, 16, 4)))
            #expect(done.pages == 4)
            #expect(enclave.acceptTrim([pages(16, 4)]) == 0)
            _ = try client.done(.trimAccepted(range(handle, 16, 4)))
            let stats = try client.stats(handle)
            #expect(stats.counter("pages_implicitly_committed") == 4)
            #expect(stats.counter("committed_lower_bound") == 1)
            #expect(stats.counter("ledger_epcm_mismatches") == 0)
            #expect(stats.summary.committedPages == 0)
            #expect(try client.status().counter("enclaves_committed_lower_bound") == 1)
        }
    }

    @Test func implicitCommitRefusesPagesTheEPCMDoesNotHold() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let handle = try register(client, enclave, .implicitCommit)
            #expect(enclave.acceptFresh([pages(16, 2)]) == 0)
            // Pages 18 and 19 were never EAUGed: the ledger keeps them holes and refuses the TRIM.
            let refused = try error(client, .trim(range(handle, 16, 4)))
            #expect(refused.code == .invalidPageState)
            #expect(refused.detail == .page(offset: 18 * Page.size, state: "hole"))
            #expect(try client.stats(handle).counter("committed_lower_bound") == 1)
        }
    }

    @Test func kernelErrorsAnswerATrimOfMissingPagesWithTheKernelsEFAULTAndCount() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let handle = try register(client, enclave, Self.hostOnly)
            #expect(enclave.acceptFresh([pages(16, 2)]) == 0)
            let refused = try error(client, .trim(range(handle, 16, 4)))
            #expect(refused.code == .kernelError)
            #expect(refused.detail == .kernel(ioctl: .modifyTypes, errno: EFAULT, countBytes: 2 * Page.size, result: 0))
            // The kernel trimmed the first two pages; the ledger follows it.
            let stats = try client.stats(handle)
            #expect(stats.counter("pages_trimmed") == 2)
            #expect(stats.counter("ledger_epcm_mismatches") == 0)
        }
    }

    @Test func kernelErrorsRunARemoveOfPagesNeverTrimmedOnTheDeviceAndAnswerEPERM() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let handle = try register(client, enclave, Self.hostOnly)
            let grant = try client.allocate(AllocateRequest(enclave: handle, offset: 8 * Page.size, length: 2 * Page.size))
            #expect(enclave.acceptFresh(grant.fresh) == 0)
            let refused = try error(client, .trimAccepted(range(handle, 8, 2)))
            #expect(refused.detail == .kernel(ioctl: .removePages, errno: EPERM, countBytes: 0, result: nil))
            #expect(try client.stats(handle).counter("ioctl_remove_pages_calls") == 1)
        }
    }

    @Test func kernelErrorsAnswerARestrictOfATCSPageWithEINVALAndCountZero() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let handle = try register(client, enclave, Self.hostOnly)
            #expect(enclave.acceptFresh([pages(4, 1)]) == 0)
            _ = try client.done(.makeTCS(range(handle, 4, 1)))
            let request = Request.restrict(PermissionsRequest(enclave: handle, range: pages(4, 1), permissions: .read))
            let refused = try error(client, request)
            #expect(refused.detail == .kernel(ioctl: .restrictPermissions, errno: EINVAL, countBytes: 0, result: 0))
            #expect(try client.stats(handle).counter("pages_tcs") == 1)
        }
    }

    @Test func freshOnlyGrantsNeverReusePoolPagesAndFreeReclaimsAtOnce() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let handle = try register(client, enclave, .freshOnly)
            let first = try client.allocate(AllocateRequest(enclave: handle, length: 4 * Page.size))
            #expect(enclave.acceptFresh(first.fresh) == 0)
            _ = try client.done(.free(RangeRequest(enclave: handle, range: first.granted)))
            guard case .reclaim(let notice) = try client.nextPush().push else {
                Issue.record("expected a RECLAIM_NOTICE")
                return
            }
            #expect(notice.ranges == [first.granted])
            #expect(try client.stats(handle).summary.pooledPages == 0)
            let second = try client.allocate(AllocateRequest(enclave: handle, length: 4 * Page.size))
            #expect(second.reused.isEmpty)
            #expect(second.fresh.reduce(0) { $0 + $1.length } == 4 * Page.size)
        }
    }

    @Test func aHostOnlyClientsAdoptedPagesAreChargedBeyondTheQuotaInsteadOfRefused() async throws {
        try await withDaemon({ $0.quota.enclaveBytes = 2 * 4096 }) { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            #expect(enclave.acceptFresh([pages(0, 4)]) == 0)  // the loader's pages, already in the EPC
            let request = Request.register(RegisterRequest(base: enclave.base, size: enclave.size, label: "sdk", adopted: [pages(0, 4)]))
            #expect(try client.call(request, descriptors: [enclave.fd]).error?.code == .quotaExceeded)
            // A preheat is still admitted against the quota, counting the adopted pages.
            let preheat = Request.register(
                RegisterRequest(base: enclave.base, size: enclave.size, label: "sdk", preheatPages: 1, adopted: [pages(0, 4)]))
            #expect(try client.call(preheat, flags: Self.hostOnly, descriptors: [enclave.fd]).error?.code == .quotaExceeded)
            let reply = try client.call(request, flags: Self.hostOnly, descriptors: [enclave.fd])
            guard case .success(.register(let registered)) = reply.outcome else {
                Issue.record("a host-only REGISTER was refused: \(reply.outcome)")
                return
            }
            #expect(try client.stats(registered.enclave).summary.committedPages == 4)
        }
    }
}
