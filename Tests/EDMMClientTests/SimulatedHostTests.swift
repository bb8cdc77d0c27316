import EDMMClient
import EDMMCore
import EDMMProtocol
import EDMMSimHost
import Glibc
import SGXDevice
import SGXSimulator
import Testing

/// The simulated enclave host's flows against an honest fake daemon that runs the real
/// (simulated) ioctls: what it EACCEPTs, what it does not, and what the EPCM looks like after.
@Suite struct SimulatedHostTests {
    static func launch(_ daemon: FakeDaemon, _ blueprint: EnclaveBlueprint = EnclaveBlueprint(label: "t")) async throws
        -> SimulatedEnclaveHost
    {
        try await SimulatedEnclaveHost.launch(adoptingSocket: daemon.clientSocket, blueprint: blueprint)
    }

    @Test func launchingBuildsAnInitializedEnclaveInTheDaemonsMachineAndRegistersIt() async throws {
        let daemon = try FakeDaemon()
        defer { daemon.stop() }
        let host = try await Self.launch(daemon, EnclaveBlueprint(label: "t", preheatPages: 3))
        defer { host.close() }
        #expect(host.handle == FakeDaemon.handle)
        #expect(host.enclave.isInitialized)
        #expect(host.machine.uuidString == daemon.machine.uuidString)
        // The daemon opened the very same enclave from the passed descriptor.
        #expect(daemon.enclave?.base == host.enclave.base)
        // Preheat pages were accepted.
        let first = host.blueprint.managedPages.first
        #expect(host.enclave.pageInfo(offset: first << 12).state == .reg)
        #expect(host.countersSinceRegistration[.eaccept] == 3)
        #expect(host.compareWithEPCM().matches)
    }

    @Test func freshPagesAreFaultedInFromTheHostSoTheirEACCEPTTakesNoFaultInTheEnclave() async throws {
        for prefault in [true, false] {
            let daemon = try FakeDaemon()
            defer { daemon.stop() }
            let host = try await Self.launch(daemon, EnclaveBlueprint(label: "t", prefaultFreshPages: prefault))
            defer { host.close() }
            _ = try await host.allocate(pages: 6)
            let counters = host.countersSinceRegistration
            #expect(counters[.eaug] == 6 && counters[.eaccept] == 6)
            // Faults inside the enclave (each an AEX on hardware) are the driver's minus the host's.
            #expect(counters[.hostFaults] == (prefault ? 6 : 0), "prefault \(prefault)")
            #expect(counters[.driverFaults] - counters[.hostFaults] == (prefault ? 0 : 6), "prefault \(prefault)")
            #expect(host.compareWithEPCM().matches)
        }
    }

    @Test func freshPagesAreAcceptedAndReusedPagesAreNot() async throws {
        let daemon = try FakeDaemon()
        defer { daemon.stop() }
        let host = try await Self.launch(daemon)
        defer { host.close() }
        let first = try await host.allocate(pages: 4)
        #expect(host.countersSinceRegistration[.eaccept] == 4)
        #expect(host.countersSinceRegistration[.eaug] == 4)
        try #require(host.cpu.write(host.enclave.base + first.byteOffset, 42).get() == ())
        _ = try await host.run(.free(first))
        let again = try await host.run(.allocate(pages: 4))
        #expect(again == .allocated(first, freshPages: 0, reusedPages: 4))
        #expect(host.countersSinceRegistration[.eaccept] == 4)
        // Reused memory keeps its contents: it never left the enclave.
        #expect(try host.cpu.read(host.enclave.base + first.byteOffset).get() == 42)
        #expect(host.compareWithEPCM().matches)
    }

    @Test func trimAcceptsEachPageAndTheBacklogRemovesThem() async throws {
        let daemon = try FakeDaemon()
        defer { daemon.stop() }
        let host = try await Self.launch(daemon)
        defer { host.close() }
        let range = try await host.allocate(pages: 8)
        _ = try await host.run(.trim(range))
        #expect(host.enclave.pageInfo(offset: range.byteOffset).state == .trim)
        #expect(host.tracker.pages[range.first] == .trimAccepted)
        try await host.flush()
        #expect(host.enclave.pageInfo(offset: range.byteOffset).state == .hole)
        #expect(host.tracker.pages.isEmpty)
        #expect(host.countersSinceRegistration[.eremove] == 8)
        #expect(host.compareWithEPCM().matches)
    }

    @Test func theTrimAcceptedBacklogRidesWithTheNextBatch() async throws {
        let daemon = try FakeDaemon()
        defer { daemon.stop() }
        let host = try await Self.launch(daemon)
        defer { host.close() }
        let range = try await host.allocate(pages: 2)
        _ = try await host.run(.trim(range))
        _ = try await host.allocate(pages: 1)
        let last = try #require(daemon.state.withLock { $0.messages.last })
        #expect(last.map(\.request.verb) == [.trimAccepted, .allocate])
        #expect(host.enclave.pageInfo(offset: range.byteOffset).state == .hole)
    }

    @Test func aBatchIsOneOCALLAndOneMessage() async throws {
        let daemon = try FakeDaemon()
        defer { daemon.stop() }
        let host = try await Self.launch(daemon)
        defer { host.close() }
        let before = host.enclave.counters
        let results = await host.perform([.allocate(pages: 1), .allocate(pages: 2), .allocate(pages: 3)])
        #expect(results.allSatisfy { (try? $0.get()) != nil })
        let spent = host.enclave.counters.since(before)
        #expect(spent[.ocalls] == 1)
        #expect(spent[.eexit] == 1)
        #expect(spent[.eaccept] == 6)
        #expect(host.stats.messages == 1)
    }

    @Test func restrictAcceptsTheNewPermissionsAndRelaxExtendsThem() async throws {
        let daemon = try FakeDaemon()
        defer { daemon.stop() }
        let host = try await Self.launch(daemon, EnclaveBlueprint(label: "t", fireAndForget: false))
        defer { host.close() }
        let range = try await host.allocate(pages: 2)
        _ = try await host.run(.restrict(range, to: .read))
        #expect(host.enclave.pageInfo(offset: range.byteOffset).state == .reg)
        #expect(host.enclave.pageInfo(offset: range.byteOffset).permissions == .read)
        #expect(throws: CPUException.self) { try host.cpu.write(host.enclave.base + range.byteOffset, 1).get() }
        _ = try await host.run(.relax(range, to: .rw))
        #expect(host.enclave.pageInfo(offset: range.byteOffset).permissions == .rw)
        #expect(host.countersSinceRegistration[.emodpe] == 2)
        #expect(host.compareWithEPCM().matches)
    }

    @Test func makeTCSLeavesAnAcceptedTCSPage() async throws {
        let daemon = try FakeDaemon()
        defer { daemon.stop() }
        let host = try await Self.launch(daemon)
        defer { host.close() }
        let range = try await host.allocate(pages: 1)
        _ = try await host.run(.makeTCS(page: range.first))
        #expect(host.enclave.pageInfo(offset: range.byteOffset).state == .tcs)
        #expect(host.tracker.pages[range.first] == .tcs)
        #expect(host.compareWithEPCM().matches)
    }

    @Test func aReclaimNoticeIsHonouredWithEacceptAndTrimAccepted() async throws {
        let daemon = try FakeDaemon()
        defer { daemon.stop() }
        let host = try await Self.launch(daemon)
        defer { host.close() }
        let range = try await host.allocate(pages: 4)
        _ = try await host.run(.free(range))
        try await host.sync()
        #expect(daemon.reclaim([range]) == 0)
        try await host.sync()  // the notice came before this reply
        await host.settle()
        #expect(host.enclave.pageInfo(offset: range.byteOffset).state == .hole)
        #expect(host.tracker.pages.isEmpty)
        #expect(host.stats.reclaimedPages == 4)
        #expect(host.stats.violations.isEmpty)
        #expect(host.compareWithEPCM().matches)
    }

    @Test func asksForPagesItDoesNotHoldAreRefusedLocally() async throws {
        let daemon = try FakeDaemon()
        defer { daemon.stop() }
        let host = try await Self.launch(daemon)
        defer { host.close() }
        let managed = host.blueprint.managedPages.first
        await #expect(throws: EnclaveHostError.notHeld(operation: "trim", offset: managed << 12, state: "hole")) {
            _ = try await host.run(.trim(PageRange(first: managed, count: 1)))
        }
    }

    @Test func anEacceptWhoseEAUGFailedIsResumedNotTreatedAsFatal() async throws {
        let daemon = try FakeDaemon()
        defer { daemon.stop() }
        let host = try await Self.launch(daemon, EnclaveBlueprint(label: "t", prefaultFreshPages: false))
        defer { host.close() }
        // The first two EAUGs fail (SIGBUS, a not-present #PF in the enclave), the rest succeed.
        let faults = try #require(
            (UInt64(0)..<100_000).lazy.map { SimulatorFaults(seed: $0, rates: [.eaugFailure: 0.5]) }
                .first { f in (0..<6).allSatisfy { f.injects(.eaugFailure, draw: $0) == ($0 < 2) } })
        daemon.machine.setFaults(faults)
        let before = host.countersSinceRegistration
        _ = try await host.allocate(pages: 4)
        let spent = host.countersSinceRegistration.since(before)
        #expect(host.stats.eacceptsResumed == 2)
        #expect(spent[.eaug] == 4 && spent[.eaccept] == 6)
        // Each failed EAUG reached the host as an exception, which resumed the enclave.
        #expect(spent[.aex] == 2 && spent[.eresume] == 2)
        #expect(host.compareWithEPCM().matches)
    }

    @Test func anEacceptWhosePageNeverComesFailsWithTheFault() async throws {
        let daemon = try FakeDaemon()
        defer { daemon.stop() }
        let host = try await Self.launch(daemon, EnclaveBlueprint(label: "t", prefaultFreshPages: false))
        defer { host.close() }
        daemon.machine.setFaults(SimulatorFaults(rates: [.eaugFailure: 1]))
        let first = host.blueprint.managedPages.first
        await #expect(
            throws: EnclaveHostError.instructionFailed(
                leaf: "EACCEPT(REG|PENDING|RW)", offset: first << 12,
                outcome: .exception(.pageFault(errorCode: 0x4, address: host.enclave.base + first << 12)))
        ) { _ = try await host.allocate(pages: 1) }
        #expect(host.stats.eacceptsResumed == UInt64(SimulatedEnclaveHost.eacceptResumes))
    }

    @Test func aDaemonInKernelModeCannotHostASimulatedEnclave() async throws {
        let daemon = try FakeDaemon(simulated: false)
        defer { daemon.stop() }
        await #expect(throws: EnclaveHostError.daemonNotSimulated) { _ = try await Self.launch(daemon) }
    }
}
