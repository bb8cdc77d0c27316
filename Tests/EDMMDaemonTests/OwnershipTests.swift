import EDMMCore
import EDMMProtocol
import Testing

/// Enclaves belong to the uid that registered them; other uids neither use nor see them, and the
/// admin verbs need root or the admin group.
@Suite struct OwnershipTests {
    @Test func anotherUIDCanNeitherAttachNorUseNorSeeAnEnclave() async throws {
        try await withDaemon({ $0.daemon.socketMode = 0o666 }) { daemon in
            let owner = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: owner))
            let (handle, _) = try owner.register(enclave, preheatPages: 1)

            let stranger = try connectAsNobody(daemon.socketPath)
            try stranger.hello()
            #expect(try stranger.expectError(.attach(handle)).code == .notOwner)
            #expect(try stranger.expectError(.trim(RangeRequest(enclave: handle, range: pages(0, 1)))).code == .notOwner)
            #expect(try stranger.expectError(.stats(handle)).code == .notOwner)
            #expect(try stranger.expectError(.unregister(handle)).code == .notOwner)
            guard case .enclaves(let list) = try stranger.expect(.enclaves(EnclaveListRequest())) else { return }
            #expect(list.total == 0)
            #expect(try stranger.expectError(.reclaim(ReclaimRequest())).code == .notAdmin)
            #expect(try stranger.expectError(.reload).code == .notAdmin)
            #expect(try owner.stats(handle).summary.committedPages == 1)
        }
    }

    @Test func membersOfTheAdminGroupSeeEveryEnclaveAndMayReclaim() async throws {
        try await withDaemon({
            $0.daemon.socketMode = 0o666
            $0.daemon.adminGroup = "nogroup"
        }) { daemon in
            let owner = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: owner))
            let (handle, _) = try owner.register(enclave)
            let operator_ = try connectAsNobody(daemon.socketPath)
            try operator_.hello()
            guard case .enclaves(let list) = try operator_.expect(.enclaves(EnclaveListRequest())) else { return }
            #expect(list.enclaves.map(\.enclave) == [handle])
            #expect(try operator_.stats(handle).summary.uid == 0)
            guard case .reclaim = try operator_.expect(.reclaim(ReclaimRequest())) else { return }
            // Seeing is not using: only the owner's uid may attach.
            #expect(try operator_.expectError(.attach(handle)).code == .notOwner)
        }
    }

    @Test func aConnectionOfTheSameUIDMustAttachBeforeUsingAnEnclave() async throws {
        try await withDaemon { daemon in
            let owner = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: owner))
            let (handle, _) = try owner.register(enclave, label: "shared")
            let thread = try daemon.connect()
            let error = try thread.expectError(.allocate(AllocateRequest(enclave: handle, length: 4096)))
            #expect(error.code == .notOwner)
            guard case .attach(let attached) = try thread.expect(.attach(handle)) else { return }
            #expect(attached.label == "shared")
            #expect(attached.base == enclave.base)
            let grant = try thread.allocate(AllocateRequest(enclave: handle, length: 4096))
            #expect(enclave.acceptFresh(grant.fresh) == 0)
            #expect(try owner.stats(handle).summary.connections == 2)
        }
    }

    @Test func anUnknownHandleIsUnknownEnclave() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            #expect(try client.expectError(.sync(4242)).code == .unknownEnclave)
            #expect(try client.expectError(.attach(4242)).code == .unknownEnclave)
            #expect(try client.expectError(.stats(4242)).code == .unknownEnclave)
        }
    }

    @Test func anUnregisteredEnclaveIsUnknownToEveryConnectionThatUsedIt() async throws {
        try await withDaemon { daemon in
            let owner = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: owner))
            let (handle, _) = try owner.register(enclave)
            let thread = try daemon.connect()
            _ = try thread.expect(.attach(handle))
            _ = try owner.done(.unregister(handle))
            #expect(try thread.expectError(.sync(handle)).code == .unknownEnclave)
            #expect(try owner.expectError(.sync(handle)).code == .unknownEnclave)
            #expect(descriptorsOpen(onSameFileAs: enclave.fd) == 1)
        }
    }
}
