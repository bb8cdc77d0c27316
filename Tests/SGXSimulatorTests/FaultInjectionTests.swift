import Glibc
import SGXDevice
import SGXSimulator
import Testing

/// The opt-in fault injection of the simulated driver and CPU: its specification, that every
/// process of a machine shares it, and that `IoctlRunner` gets every page done through it.
@Suite struct FaultInjectionTests {
    @Test func aSpecificationParsesAndPrintsTheSameWay() throws {
        let faults = try SimulatorFaults(parsing: "load-ebusy=0.05, eaug-sigbus=0.01,seed=7")
        #expect(faults == SimulatorFaults(seed: 7, rates: [.loadBusy: 0.05, .eaugFailure: 0.01]))
        #expect(faults.description == "load-ebusy=0.05,eaug-sigbus=0.01,seed=7")
        #expect(try SimulatorFaults(parsing: faults.description) == faults)
        #expect(try SimulatorFaults(parsing: "all=0.5") == .all(0.5))
        #expect(try SimulatorFaults(parsing: "off").isOff)
        #expect(try SimulatorFaults(parsing: "").isOff)
        #expect(try SimulatorFaults(parsing: "eaug-sigbus=0").isOff)
    }

    @Test func aBadSpecificationSaysWhatIsWrong() {
        #expect(throws: SimulatorFaults.ParseError(message: "eaug-sigbus=2: the rate must be a number from 0 to 1")) {
            try SimulatorFaults(parsing: "eaug-sigbus=2")
        }
        #expect(
            throws: SimulatorFaults.ParseError(
                message: "unknown fault \"eaug\"; the faults are load-ebusy, unmark-reclaimable, eaug-sigbus, epc-page-conflict and all")
        ) { try SimulatorFaults(parsing: "eaug=0.1") }
        #expect(throws: SimulatorFaults.ParseError(message: "\"seed\" is not NAME=VALUE (e.g. eaug-sigbus=0.01)")) {
            try SimulatorFaults(parsing: "seed")
        }
        #expect(throws: SimulatorFaults.ParseError(message: "seed \"-1\" is not a non-negative integer")) {
            try SimulatorFaults(parsing: "seed=-1")
        }
    }

    @Test func theMachineRegionCarriesTheFaultsToEveryProcess() throws {
        let faults = SimulatorFaults(seed: 3, rates: [.pageConflict: 0.25, .reclaimerHoldsPage: 1])
        let machine = try SimulatedMachine.create(.init(epcPages: 64, enclaveCapacity: 4, faults: faults))
        #expect(machine.faults == faults)
        #expect(try SimulatedMachine.open(fd: machine.fd).faults == faults)
        // A second process's EAUG fails once the first one turns the fault on.
        let enclave = try SharedStateTests.emptyEnclave(machine)
        let host = try HelperProcess(machine: machine, enclave: enclave)
        machine.setFaults(SimulatorFaults(rates: [.eaugFailure: 1]))
        #expect(try host.send(#"{"op":"eaccept","enclave":"A","page":0,"flags":523}"#) == #"{"exception":14}"#)
        #expect(machine.faultCounts[.eaugFailure] == FaultCount(opportunities: 1, injected: 1))
        machine.setFaults(.off)
        #expect(try host.send(#"{"op":"eaccept","enclave":"A","page":0,"flags":523}"#) == #"{"ret":0}"#)
        #expect(machine.checkInvariants(enclaves: [enclave]).isEmpty)
    }

    @Test func aSeedDecidesWhichOpportunitiesFail() throws {
        let faults = SimulatorFaults(seed: 11, rates: [.pageConflict: 0.3])
        let machine = try SimulatedMachine.create(.init(epcPages: 256, enclaveCapacity: 4))
        let enclave = try SharedStateTests.emptyEnclave(machine)
        let cpu = try enclave.cpu()
        for page: UInt64 in 0..<64 { #expect(cpu.eaccept(enclave.base + page * 4096, flags: SharedStateTests.regPendingRW) == .success) }
        // Page by page, so that each RESTRICT is one opportunity: the failures are the predicted ones.
        machine.setFaults(faults)
        var failed: [UInt64] = []
        for page: UInt64 in 0..<64 {
            var p = RestrictPermissionsParams(offset: page * 4096, length: 4096, permissions: 1)
            if enclave.restrictPermissions(&p) == EFAULT, p.result == SGXErrorCode.epcPageConflict { failed.append(page) }
        }
        #expect(failed == (0..<64).filter { faults.injects(.pageConflict, draw: $0) })
        #expect(!failed.isEmpty && failed.count < 64)
        #expect(machine.faultCounts[.pageConflict] == FaultCount(opportunities: 64, injected: UInt64(failed.count)))
    }

    @Test func ioctlRunnerResumesFromCountThroughInjectedEAGAINAndEBUSY() throws {
        let machine = try SimulatedMachine.create(.init(epcPages: 512, enclaveCapacity: 4))
        let enclave = try SharedStateTests.emptyEnclave(machine, pages: 256)
        let cpu = try enclave.cpu()
        let pages: UInt64 = 128
        for page in 0..<pages { #expect(cpu.eaccept(enclave.base + page * 4096, flags: SharedStateTests.regPendingRW) == .success) }
        machine.setFaults(SimulatorFaults(seed: 5, rates: [.loadBusy: 0.2, .reclaimerHoldsPage: 0.2]))
        let runner = IoctlRunner(sleep: { _ in })

        let trim = runner.run(.modifyTypes(.trim), offset: 0, length: pages * 4096, on: enclave)
        #expect(trim.isComplete && trim.bytesDone == pages * 4096)
        // Every EAGAIN was an injected busy load, and each retry resumed where the last call stopped.
        let trimBusy = machine.faultCounts[.loadBusy]!.injected
        #expect(trim.retries == RetryCounts(eagain: Int(trimBusy)) && trimBusy > 0)
        #expect(trim.ioctlCalls == 1 + Int(trimBusy))
        #expect((0..<pages).allSatisfy { enclave.pageInfo(offset: $0 * 4096).state == .trimModified })

        for page in 0..<pages { #expect(cpu.eaccept(enclave.base + page * 4096, flags: [.pageType(.trim), .modified]) == .success) }
        machine.setFaults(SimulatorFaults(seed: 6, rates: [.loadBusy: 0.2, .reclaimerHoldsPage: 0.2]))
        let remove = runner.run(.removePages, offset: 0, length: pages * 4096, on: enclave)
        #expect(remove.isComplete && remove.bytesDone == pages * 4096)
        let counts = machine.faultCounts
        #expect(remove.retries == RetryCounts(ebusy: Int(counts[.reclaimerHoldsPage]!.injected), eagain: Int(counts[.loadBusy]!.injected)))
        #expect(remove.retries.ebusy > 0 && remove.retries.eagain > 0)
        #expect(enclave.presentPages == 0)
        #expect(machine.checkInvariants(enclaves: [enclave]).isEmpty)
    }

    @Test func aConversionToTCSThatMeetsTheReclaimerIsRetriedWithItsCapIntact() throws {
        let machine = try SimulatedMachine.create(.init(epcPages: 64, enclaveCapacity: 4))
        let enclave = try SharedStateTests.emptyEnclave(machine)
        let cpu = try enclave.cpu()
        #expect(cpu.eaccept(enclave.base, flags: SharedStateTests.regPendingRW) == .success)
        // The first unmark fails, the second succeeds (seed chosen so).
        let faults = try #require(
            (UInt64(0)..<1000).lazy.map { SimulatorFaults(seed: $0, rates: [.reclaimerHoldsPage: 0.5]) }
                .first { $0.injects(.reclaimerHoldsPage, draw: 0) && !$0.injects(.reclaimerHoldsPage, draw: 1) })
        machine.setFaults(faults)
        let outcome = IoctlRunner(sleep: { _ in }).run(.modifyTypes(.tcs), offset: 0, length: 4096, on: enclave)
        #expect(outcome.isComplete && outcome.retries == RetryCounts(eagain: 1))
        let info = enclave.pageInfo(offset: 0)
        #expect(info.state == .tcsModified && info.vmMaxProtection == .rw)
    }
}
