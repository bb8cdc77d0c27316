import SGXDevice
import SGXSimulator
import Testing

/// A thread still running in an enclave that was released (its last handle closed, say while a
/// host closes with a notice half honoured) cannot give it EPC pages: slot tags name the enclave's
/// table index, which the next enclave reuses, so such a page would belong to the newcomer twice.
/// Found by `edmm-sim soak` with frequent re-registrations.
@Suite struct ReleasedEnclaveTests {
    @Test func aReleasedEnclavesLingeringCPUGetsNoEPCPageEvenWhenItsIndexIsReused() throws {
        let machine = try SimulatedMachine.create(.init(epcPages: 64, enclaveCapacity: 1))
        let gone = try SharedStateTests.emptyEnclave(machine)
        let lingering = try gone.cpu()
        #expect(lingering.eaccept(gone.base, flags: SharedStateTests.regPendingRW) == .success)
        gone.close()
        #expect(machine.stats.aliveEnclaves == 0 && machine.stats.usedPages == 0)

        // The only table entry goes to a newcomer, which holds the same page.
        let newcomer = try SharedStateTests.emptyEnclave(machine)
        #expect(try newcomer.cpu().eaccept(newcomer.base, flags: SharedStateTests.regPendingRW) == .success)
        #expect(newcomer.epcUsage == EPCUsage(enclavePages: 1, secsPages: 1, vaPages: 1))
        #expect(machine.stats.usedPages == 3)

        // The released enclave's CPU touches its page again: it faults, nothing is allocated.
        #expect(lingering.eaccept(gone.base + 4096, flags: SharedStateTests.regPendingRW) != .success)
        if case .success = lingering.read(gone.base) { Issue.record("a released enclave's page was readable") }
        #expect(machine.stats.usedPages == 3)
        #expect(machine.checkInvariants(enclaves: [newcomer]).isEmpty)
    }
}
