import SGXSimulator
import Testing

@Suite struct CostModelTests {
    @Test func anOcallIsPricedAsOneExitPlusOneEntry() throws {
        let machine = try SimulatedMachine.create(.init(epcPages: 8, enclaveCapacity: 2))
        let enclave = try SharedStateTests.emptyEnclave(machine, pages: 16)
        let cpu = try enclave.cpu()
        let before = enclave.counters
        let answer = cpu.ocall { 42 }
        let spent = enclave.counters.since(before)
        let model = CostModel(cyclesPerSecond: 1000, cycles: [.eenter: 100, .eexit: 10, .ocalls: 1])
        #expect(answer == 42)
        #expect(spent[.ocalls] == 1)
        #expect(model.cycles(for: spent) == 111)
        #expect(model.seconds(for: spent) == 0.111)
    }

    @Test func aFaultResolvedInsideTheEnclaveIsPricedWithItsAEXAndERESUME() throws {
        let machine = try SimulatedMachine.create(.init(epcPages: 64, enclaveCapacity: 2))
        let enclave = try SharedStateTests.emptyEnclave(machine, pages: 16)
        let cpu = try enclave.cpu()
        let model = CostModel(cyclesPerSecond: 1000, cycles: [.aex: 100, .eresume: 10, .driverFaults: 1, .eaug: 2, .eaccept: 3])
        let before = enclave.counters
        // EACCEPT of a hole: the operand faults, the driver EAUGs, the CPU retries.
        #expect(cpu.eaccept(enclave.base, flags: SharedStateTests.regPendingRW) == .success)
        let inside = enclave.counters.since(before)
        #expect(inside[.resolvedFaults] == 1 && inside[.aex] == 0 && inside[.eresume] == 0)
        #expect(model.cycles(for: inside) == 100 + 10 + 1 + 2 + 3)
        // The host touching a hole takes the same fault outside the enclave: no AEX, no ERESUME.
        let host = enclave.counters
        #expect(enclave.untrustedAccess(address: enclave.base + 4096, write: false) == .abortPage)
        let outside = enclave.counters.since(host)
        #expect(outside[.hostFaults] == 1 && outside[.resolvedFaults] == 0)
        #expect(model.cycles(for: outside) == 1 + 2)
    }

    @Test func everyDefaultCostNamesItsSourceOrSaysItIsAnAssumption() {
        for entry in CostModel.defaultTable {
            #expect(entry.source.contains("assumption") || entry.source.contains("Gramine") || entry.source.contains("VXAPPS"))
            #expect(CostModel.defaultCycles[entry.counter] == entry.cycles)
        }
    }
}
