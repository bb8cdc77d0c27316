import EDMMClient
import EDMMCore
import EDMMProtocol
import Glibc
import SGXDevice
import SGXSimulator
import Testing

/// A daemon that restarted without systemd's FD store starts with a simulated EPC of its own, but
/// its clients' enclaves live in the one its predecessor created. A HELLO with the machine flag
/// carries that EPC; a daemon with no enclave open takes it over, and re-registration with
/// `adopted` pages rebuilds each ledger from the EPCM.
@Suite struct MachineTakeoverTests {
    /// A simulated EPC of the same size as the test daemon's (16 MiB), as a predecessor left it.
    static func predecessorMachine() throws -> SimulatedMachine {
        try SimulatedMachine.create(.init(epcPages: 4096, enclaveCapacity: 256))
    }

    @Test func aFreshDaemonTakesOverTheSimulatedEPCAHelloCarries() async throws {
        let machine = try Self.predecessorMachine()
        try await withDaemon { daemon in
            #expect(daemon.daemon.simulatedMachine?.uuidString != machine.uuidString)
            let client = try TestClient(path: daemon.socketPath)
            let ids = try client.send([.hello(HelloRequest(clientName: "reconnecting"))], flags: .machine, descriptors: [machine.fd])
            #expect(try client.response(to: ids[0]).error == nil)
            let handed = try SimulatedMachine.open(fd: try #require(client.receivedDescriptors.last))
            #expect(handed.uuidString == machine.uuidString)
            #expect(daemon.daemon.simulatedMachine?.uuidString == machine.uuidString)
            // Enclaves of that EPC register; a newcomer's HELLO now hands it out too.
            let enclave = try TestEnclave(machine: machine)
            _ = try client.register(enclave)
            let newcomer = try daemon.connect()
            #expect(try daemon.machine(from: newcomer).uuidString == machine.uuidString)
        }
    }

    @Test func offeringTheDaemonsOwnEPCIsAnOrdinaryHello() async throws {
        try await withDaemon { daemon in
            let first = try daemon.connect()
            let own = try daemon.machine(from: first)
            let enclave = try TestEnclave(machine: own)
            _ = try first.register(enclave)
            let second = try TestClient(path: daemon.socketPath)
            let ids = try second.send([.hello(HelloRequest(clientName: "same"))], flags: .machine, descriptors: [own.fd])
            #expect(try second.response(to: ids[0]).error == nil)
            #expect(try daemon.machine(from: second).uuidString == own.uuidString)
        }
    }

    @Test func aDaemonServingEnclavesKeepsItsEPCAndTheHelloFailsWithBadDescriptor() async throws {
        let machine = try Self.predecessorMachine()
        try await withDaemon { daemon in
            let owner = try daemon.connect()
            let own = try daemon.machine(from: owner)
            _ = try owner.register(try TestEnclave(machine: own))
            let client = try TestClient(path: daemon.socketPath)
            let ids = try client.send([.hello(HelloRequest(clientName: "late"))], flags: .machine, descriptors: [machine.fd])
            #expect(try client.response(to: ids[0]).error?.code == .badDescriptor)
            #expect(daemon.daemon.simulatedMachine?.uuidString == own.uuidString)
            // The connection is still waiting for a HELLO, and a plain one works.
            try client.hello()
            #expect(try daemon.machine(from: client).uuidString == own.uuidString)
        }
    }

    @Test func anEPCOfAnotherSizeOrNotAnEPCAtAllIsRefused() async throws {
        let small = try SimulatedMachine.create(.init(epcPages: 1024, enclaveCapacity: 16))
        let (reader, writer) = try makePipe()
        defer {
            close(reader)
            close(writer)
        }
        try await withDaemon { daemon in
            let own = daemon.daemon.simulatedMachine?.uuidString
            for descriptor in [small.fd, reader] {
                let client = try TestClient(path: daemon.socketPath)
                let ids = try client.send([.hello(HelloRequest(clientName: "wrong"))], flags: .machine, descriptors: [descriptor])
                #expect(try client.response(to: ids[0]).error?.code == .badDescriptor)
            }
            let bare = try TestClient(path: daemon.socketPath)
            let ids = try bare.send([.hello(HelloRequest(clientName: "nothing"))], flags: .machine)
            #expect(try bare.response(to: ids[0]).error?.code == .badDescriptor)
            #expect(daemon.daemon.simulatedMachine?.uuidString == own)
        }
    }

    @Test func theMachineFlagOnAnyVerbButHelloIsInvalidFlags() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let ids = try client.send([.status], flags: .machine)
            #expect(try client.response(to: ids[0]).error?.code == .invalidFlags)
        }
    }

    @Test func adoptedPagesTakeTheStateTheEPCMShowsAndHolesAreSkipped() async throws {
        let machine = try Self.predecessorMachine()
        let enclave = try TestEnclave(machine: machine)
        // What a crash can leave behind, page by page (offsets in pages):
        // 0-3 accepted RW; 4 restricted to R, EACCEPT(PR) not done yet; 5-6 EMODT(TCS) done (the
        // enclave writes a valid TCS before accepting one; these stay TCS|MODIFIED); 7 EMODT(TRIM)
        // not yet accepted; 8 trimmed and accepted; 9 a hole (removed before the crash).
        #expect(enclave.acceptFresh([pages(0, 9)]) == 0)
        var restrict = RestrictPermissionsParams(
            offset: 4 * Page.size, length: Page.size, permissions: UInt64(PagePermissions.read.rawValue))
        #expect(enclave.enclave.restrictPermissions(&restrict) == 0)
        var tcs = ModifyTypesParams(offset: 5 * Page.size, length: 2 * Page.size, pageType: UInt64(SGXPageType.tcs.rawValue))
        #expect(enclave.enclave.modifyTypes(&tcs) == 0)
        var trim = ModifyTypesParams(offset: 7 * Page.size, length: 2 * Page.size, pageType: UInt64(SGXPageType.trim.rawValue))
        #expect(enclave.enclave.modifyTypes(&trim) == 0)
        #expect(enclave.acceptTrim([pages(8, 1)]) == 0)

        try await withDaemon { daemon in
            let client = try TestClient(path: daemon.socketPath)
            let hello = try client.send([.hello(HelloRequest(clientName: "re-register"))], flags: .machine, descriptors: [machine.fd])
            #expect(try client.response(to: hello[0]).error == nil)
            let request = RegisterRequest(base: enclave.base, size: enclave.size, label: "survivor", adopted: [pages(0, 10)])
            guard case .register(let reply) = try client.expect(.register(request), descriptors: [enclave.fd]) else { return }
            let stats = try client.stats(reply.enclave)
            #expect(stats.summary.committedPages == 5)
            #expect(stats.summary.tcsPages == 2)
            #expect(stats.summary.trimmingPages == 2)
            #expect(stats.counter("ledger_epcm_mismatches") == 0)
            // The enclave finishes what it had started, and the daemon removes the trimmed pages.
            #expect(enclave.acceptRestrict([pages(4, 1)], .read) == 0)
            #expect(enclave.acceptTrim([pages(7, 1)]) == 0)
            #expect(try client.call(.trimAccepted(RangeRequest(enclave: reply.enclave, range: pages(7, 2)))).error == nil)
            let after = try client.stats(reply.enclave)
            #expect(after.summary.trimmingPages + after.summary.removingPages == 0)
            #expect(after.counter("ledger_epcm_mismatches") == 0)
            #expect(enclave.enclave.pageInfo(offset: 7 * Page.size).state == .hole)
        }
    }
}

extension MachineTakeoverTests {
    @Test func theClientLibraryOffersItsEPCInHelloWhenGivenOne() async throws {
        let machine = try Self.predecessorMachine()
        try await withDaemon { daemon in
            let connection = try await EDMMConnection.connect(
                socketPath: daemon.socketPath, clientName: "reconnecting host", simulatedMachine: machine.fd)
            defer { connection.close() }
            let handed = try SimulatedMachine.open(fd: try #require(connection.machineDescriptor))
            #expect(handed.uuidString == machine.uuidString)
            #expect(daemon.daemon.simulatedMachine?.uuidString == machine.uuidString)
        }
    }
}
