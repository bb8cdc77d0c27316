import EDMMCore
import EDMMProtocol
import Glibc
import SGXSimulator
import Testing

@testable import EDMMDaemon

/// One enclave, one ledger: a second REGISTER of an enclave edmmd already manages is refused,
/// whatever descriptor number or connection it arrives on, and names ATTACH. Before, each REGISTER
/// made a new ledger, so an enclave held its quota twice and ALLOCATE granted accepted pages again
/// as fresh (issue 10).
@Suite struct DuplicateRegistrationTests {
    @Test func aSecondRegisterOfOneEnclaveIsRefusedOnTheSameConnectionWhateverItsDescriptorNumber() async throws {
        try await withDaemon({ $0.quota.enclaveBytes = 16 * 4096 }) { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let (handle, _) = try client.register(enclave, label: "once")
            let grant = try client.allocate(AllocateRequest(enclave: handle, offset: 0, length: 16 * 4096))
            #expect(enclave.acceptFresh(grant.fresh) == 0)

            let again = try client.expectError(enclave.registerRequest(label: "twice"), descriptors: [enclave.fd])
            #expect(again.code == .invalidArgument)
            #expect(again.message.contains("ATTACH \(handle)"))
            // Another descriptor number for the same open file, and the memfd opened afresh.
            let duplicate = dup(enclave.fd)
            defer { close(duplicate) }
            #expect(try client.expectError(enclave.registerRequest(label: "dup"), descriptors: [duplicate]).code == .invalidArgument)
            let reopened = open("/proc/self/fd/\(enclave.fd)", O_RDWR | O_CLOEXEC)
            try #require(reopened >= 0)
            defer { close(reopened) }
            #expect(try client.expectError(enclave.registerRequest(label: "reopened"), descriptors: [reopened]).code == .invalidArgument)

            let status = try client.status()
            #expect(status.enclaves == 1)
            #expect(status.epcCommittedBytes == 16 * 4096)
            // The quota still holds for the one ledger there is.
            let more = try client.expectError(.allocate(AllocateRequest(enclave: handle, length: 4096)))
            #expect(more.code == .quotaExceeded)
        }
    }

    @Test func anotherConnectionOfTheSameUIDIsToldToATTACHAndATTACHSharesTheOneLedger() async throws {
        try await withDaemon({ $0.quota.enclaveBytes = 16 * 4096 }) { daemon in
            let first = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: first))
            let (handle, _) = try first.register(enclave)
            let grant = try first.allocate(AllocateRequest(enclave: handle, offset: 0, length: 16 * 4096))
            #expect(enclave.acceptFresh(grant.fresh) == 0)

            let second = try daemon.connect()
            let refused = try second.expectError(enclave.registerRequest(label: "second"), descriptors: [enclave.fd])
            #expect(refused.code == .invalidArgument)
            #expect(refused.message.contains("ATTACH \(handle)"))
            guard case .attach(let attached) = try second.expect(.attach(handle)) else {
                Issue.record("expected an ATTACH reply")
                return
            }
            #expect(attached.base == enclave.base)
            let error = try second.expectError(.allocate(AllocateRequest(enclave: handle, length: 4096)))
            #expect(error.detail == .quota(scope: .enclave, askedPages: 1, usedPages: 16, limitPages: 16))
            #expect(try second.status().enclaves == 1)
        }
    }

    @Test func twoRegistersOfOneEnclaveInOneMessageGetOneLedger() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let duplicate = dup(enclave.fd)
            defer { close(duplicate) }
            var second = RegisterRequest(base: enclave.base, size: enclave.size, label: "b")
            second.descriptorIndex = 1
            let ids = try client.send(
                [enclave.registerRequest(label: "a"), .register(second)], descriptors: [enclave.fd, duplicate])
            let replies = try client.responses(to: ids)
            #expect(replies[0].error == nil)
            #expect(replies[1].error?.code == .invalidArgument)
            #expect(try client.status().enclaves == 1)
        }
    }

    /// The refusal names a handle whose REGISTER may still be running (here its adoption waits for
    /// the enclave's lock, which a stopped process holds): an ATTACH of it waits for that REGISTER
    /// instead of answering unknown-enclave.
    @Test func anATTACHOfAnEnclaveWhoseREGISTERIsStillRunningWaitsForIt() async throws {
        try await withDaemon { daemon in
            let first = try daemon.connect()
            let machine = try daemon.machine(from: first)
            let enclave = try TestEnclave(machine: machine)
            #expect(enclave.acceptFresh([pages(0, 4)]) == 0)
            let holder = try StoppedLockHolder(machine: machine, enclave: enclave.enclave, holding: .enclave)
            let request = RegisterRequest(base: enclave.base, size: enclave.size, label: "slow", adopted: [pages(0, 4)])
            let registering = try first.send([.register(request)], descriptors: [enclave.fd])
            // A connection's messages are read in order: once this STATUS is answered, the REGISTER
            // before it has claimed the enclave (the second connection's REGISTER may not overtake it).
            _ = try first.status()

            let second = try daemon.connect()
            let refused = try second.expectError(enclave.registerRequest(label: "again"), descriptors: [enclave.fd])
            let named = try #require(refused.message.number(after: "ATTACH "))
            let attaching = try second.send([.attach(named)])
            #expect(holder.resume() == #"{"ok":true}"#)
            guard case .success(.register(let registered)) = try first.response(to: registering[0]).outcome else {
                Issue.record("the slow REGISTER failed")
                return
            }
            #expect(registered.enclave == named)
            #expect(try second.response(to: attaching[0]).error == nil)
        }
    }

    @Test func anEnclaveMayBeRegisteredAgainOnceItWasUnregisteredOrItsConnectionClosed() async throws {
        try await withDaemon { daemon in
            var client: TestClient? = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: try #require(client)))
            let (first, _) = try #require(client).register(enclave)
            _ = try #require(client).done(.unregister(first))
            let (second, _) = try #require(client).register(enclave)
            #expect(second != first)

            let other = try daemon.connect()
            client = nil
            // The closed connection's enclave goes with it; then the other connection may register it.
            #expect(try eventually { try other.status().enclaves == 0 })
            let (third, _) = try other.register(enclave)
            #expect(third != second)
        }
    }

    @Test func anotherUsersRegisterOfAnEnclaveIsRefusedWithoutItsHandle() async throws {
        try await withDaemon({ $0.daemon.socketMode = 0o666 }) { daemon in
            let owner = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: owner))
            let (handle, _) = try owner.register(enclave)
            let stranger = try connectAsNobody(daemon.socketPath)
            try stranger.hello()
            let refused = try stranger.expectError(enclave.registerRequest(label: "stolen"), descriptors: [enclave.fd])
            #expect(refused.code == .notOwner)
            #expect(!refused.message.contains("\(handle)"))
        }
    }

    /// A state from before this rule could hold one enclave twice (two descriptors of one enclave
    /// region): the restart keeps the first and drops the other, and a client that registers the
    /// restored enclave again instead of attaching it is told to ATTACH.
    @Test func aRestoreKeepsOneOfTwoRecordsOfOneEnclaveAndARegisterAfterTheRestartNamesATTACH() async throws {
        let site = try RestartTests.Site()
        defer { site.remove() }
        let machine = try SimulatedMachine.create(.init(epcPages: 4096, enclaveCapacity: 64))
        let enclave = try TestEnclave(machine: machine)
        let handles: [EnclaveHandle] = [1 << 20, (1 << 20) + 1]
        let owner = PeerCredentials(pid: getpid(), uid: getuid(), gid: getgid(), groups: [])
        let records = handles.map { handle in
            PersistedState.Enclave(
                record: EnclaveRecord(
                    identity: EnclaveIdentity(
                        handle: handle, label: "twice", owner: owner, device: .simulated, base: enclave.base, size: enclave.size,
                        managed: PageRange(first: 0, count: enclave.size >> Page.shift)), pages: []),
                counters: EnclaveCounters())
        }
        let slots = try StateSlots.create().get()
        try slots.write(PersistedState(lastHandle: handles[1], cleanShutdown: true, enclaves: records).encoded()).get()
        let reopened = open("/proc/self/fd/\(enclave.fd)", O_RDWR | O_CLOEXEC)
        try #require(reopened >= 0)
        let stored = [
            "state.0": fcntl(slots.descriptors[0], F_DUPFD_CLOEXEC, 3), "state.1": fcntl(slots.descriptors[1], F_DUPFD_CLOEXEC, 3),
            "machine": fcntl(machine.fd, F_DUPFD_CLOEXEC, 3), "enclave-\(handles[0])": fcntl(enclave.fd, F_DUPFD_CLOEXEC, 3),
            "enclave-\(handles[1])": reopened,
        ]
        let daemon = try site.startDaemon(passing: stored)
        let client = try site.connect()
        #expect(try client.status().enclaves == 1)
        #expect(try client.call(.attach(handles[1])).error?.code == .unknownEnclave)

        let request = RegisterRequest(
            base: enclave.base, size: enclave.size, label: "twice", adopted: [WireRange(offset: 0, length: enclave.size)])
        let refused = try client.expectError(.register(request), descriptors: [enclave.fd])
        #expect(refused.code == .invalidArgument)
        #expect(refused.message.contains("ATTACH \(handles[0])"))
        #expect(try client.call(.attach(handles[0])).error == nil)
        await daemon.shutdown()
    }
}

extension String {
    /// The number right after `marker` ("... use ATTACH 42 to ..." after "ATTACH " is 42).
    func number(after marker: String) -> UInt64? {
        guard let range = firstRange(of: marker) else { return nil }
        return UInt64(self[range.upperBound...].prefix { $0.isNumber })
    }
}
