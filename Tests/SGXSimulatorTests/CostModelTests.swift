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

    @Test func everyDefaultCostNamesItsSourceOrSaysItIsAnAssumption() {
        for entry in CostModel.defaultTable {
            #expect(entry.source.contains("assumption") || entry.source.contains("Gramine") || entry.source.contains("VXAPPS"))
            #expect(CostModel.defaultCycles[entry.counter] == entry.cycles)
        }
    }
}
