import CEDMMShims
import EDMMCore
import EDMMProtocol
import Glibc
import SGXSimulator
import Testing

/// REGISTER validates every field and the descriptor; refused descriptors are closed.
@Suite struct RegistrationTests {
    @Test func labelsOutsideTheAllowedCharactersAreInvalidArguments() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            for label in ["", "has space", "slash/no", "ünicode"] {
                let error = try client.expectError(enclave.registerRequest(label: label), descriptors: [enclave.fd])
                #expect(error.code == .invalidArgument, "label \(label)")
            }
        }
    }

    @Test func sizesThatAreNotPowersOfTwoAndUnalignedBasesAreInvalidArguments() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let badSize = RegisterRequest(base: enclave.base, size: 3 * 4096, label: "x")
            #expect(try client.expectError(.register(badSize), descriptors: [enclave.fd]).code == .invalidArgument)
            let badBase = RegisterRequest(base: enclave.base + 4096, size: enclave.size, label: "x")
            #expect(try client.expectError(.register(badBase), descriptors: [enclave.fd]).code == .invalidArgument)
        }
    }

    @Test func anELRANGEThatDiffersFromTheSimulatedEnclavesIsRefused() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let request = RegisterRequest(base: enclave.base * 2, size: enclave.size, label: "liar")
            let error = try client.expectError(.register(request), descriptors: [enclave.fd])
            #expect(error.code == .invalidArgument)
            #expect(descriptorsOpen(onSameFileAs: enclave.fd) == 1)
        }
    }

    @Test func managedAndAdoptedRangesAreCheckedAgainstELRANGE() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let outside = RegisterRequest(
                base: enclave.base, size: enclave.size, label: "x", managed: WireRange(offset: enclave.size, length: 4096))
            #expect(try client.expectError(.register(outside), descriptors: [enclave.fd]).code == .outOfRange)
            let unaligned = RegisterRequest(
                base: enclave.base, size: enclave.size, label: "x", managed: WireRange(offset: 100, length: 4096))
            #expect(try client.expectError(.register(unaligned), descriptors: [enclave.fd]).code == .notAligned)
            let outsideAdopted = RegisterRequest(
                base: enclave.base, size: enclave.size, label: "x", adopted: [WireRange(offset: enclave.size - 4096, length: 8192)])
            #expect(try client.expectError(.register(outsideAdopted), descriptors: [enclave.fd]).code == .outOfRange)
        }
    }

    @Test func adoptedPagesEnterTheLedgerAsCommittedWithTheirEPCMPermissions() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            // The enclave accepted four pages before edmmd knew it (an EACCEPT of a hole EAUGs it).
            #expect(enclave.acceptFresh([pages(8, 4)]) == 0)
            let request = RegisterRequest(base: enclave.base, size: enclave.size, label: "again", adopted: [pages(8, 4)])
            guard case .register(let reply) = try client.expect(.register(request), descriptors: [enclave.fd]) else { return }
            let stats = try client.stats(reply.enclave)
            #expect(stats.summary.committedPages == 4)
            #expect(stats.counter("ledger_epcm_mismatches") == 0)
        }
    }

    @Test func aRegisterWithoutItsDescriptorIsBadDescriptor() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            #expect(try client.expectError(enclave.registerRequest()).code == .badDescriptor)
        }
    }

    @Test func twoRegistersCannotShareOneDescriptor() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let ids = try client.send(
                [enclave.registerRequest(label: "a"), enclave.registerRequest(label: "b")], descriptors: [enclave.fd])
            let replies = try client.responses(to: ids)
            #expect(replies[0].error == nil)
            #expect(replies[1].error?.code == .badDescriptor)
        }
    }

    @Test func aPipeIsRefusedAsBadDescriptorAndClosed() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let (reader, writer) = try makePipe()
            defer { close(reader) }
            let error = try client.expectError(enclave.registerRequest(), descriptors: [writer])
            #expect(error.code == .badDescriptor)
            #expect(error.message.contains("pipe"))
            close(writer)
            var byte: UInt8 = 0
            #expect(read(reader, &byte, 1) == 0)
        }
    }

    @Test func aSocketIsRefusedAsBadDescriptorAndClosed() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            var pair: [Int32] = [0, 0]
            try #require(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0)
            defer { close(pair[0]) }
            #expect(try client.expectError(enclave.registerRequest(), descriptors: [pair[1]]).code == .badDescriptor)
            close(pair[1])
            var byte: UInt8 = 0
            #expect(read(pair[0], &byte, 1) == 0)
        }
    }

    @Test func aRegularFileIsRefusedAsBadDescriptorAndClosed() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let path = daemon.directory + "/not-an-enclave"
            let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            try #require(fd >= 0)
            defer {
                close(fd)
                unlink(path)
            }
            #expect(try client.expectError(enclave.registerRequest(), descriptors: [fd]).code == .badDescriptor)
            #expect(descriptorsOpen(onSameFileAs: fd) == 1)
        }
    }

    @Test func devNullIsRefusedAsBadDescriptor() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let fd = open("/dev/null", O_RDWR | O_CLOEXEC)
            try #require(fd >= 0)
            defer { close(fd) }
            let error = try client.expectError(enclave.registerRequest(), descriptors: [fd])
            #expect(error.code == .badDescriptor)
        }
    }

    @Test func aCorruptSimulatedRegionIsRefusedAsBadDescriptorAndClosed() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let fd = edmm_memfd_create("corrupt-enclave", 1)
            try #require(fd >= 0)
            defer { close(fd) }
            let junk = [UInt8](repeating: 0xA5, count: 8192)
            try #require(write(fd, junk, junk.count) == junk.count)
            let error = try client.expectError(enclave.registerRequest(), descriptors: [fd])
            #expect(error.code == .badDescriptor)
            #expect(descriptorsOpen(onSameFileAs: fd) == 1)
        }
    }

    @Test func anEnclaveOfAnotherSimulatedMachineIsRefused() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let otherMachine = try SimulatedMachine.create(.init(epcPages: 256, enclaveCapacity: 4))
            let stranger = try TestEnclave(machine: otherMachine)
            let error = try client.expectError(stranger.registerRequest(), descriptors: [stranger.fd])
            #expect(error.code == .badDescriptor)
            #expect(error.message.contains("another simulated machine"))
        }
    }

    @Test func handlesAreNeverReused() async throws {
        try await withDaemon { daemon in
            let client = try daemon.connect()
            let machine = try daemon.machine(from: client)
            var seen = Set<EnclaveHandle>()
            for _ in 0..<3 {
                let enclave = try TestEnclave(machine: machine)
                let (handle, _) = try client.register(enclave)
                #expect(seen.insert(handle).inserted)
                _ = try client.done(.unregister(handle))
            }
        }
    }

    @Test func preheatBeyondTheLimitIsRefusedWithTheNumbers() async throws {
        try await withDaemon({ $0.quota.maxPreheatBytes = 16 * 4096 }) { daemon in
            let client = try daemon.connect()
            let enclave = try TestEnclave(machine: try daemon.machine(from: client))
            let error = try client.expectError(enclave.registerRequest(preheatPages: 17), descriptors: [enclave.fd])
            #expect(error.code == .invalidArgument)
            #expect(error.detail == .limit(limit: 16, actual: 17))
        }
    }
}
