import Glibc
import SGXDevice
import SGXSimulator
import Synchronization
import Testing

/// Two real processes on one simulated enclave: this test process (the daemon's role: ioctls)
/// and `edmm-sim sim-helper` (the enclave host's role: EACCEPT, memory), which inherits the
/// machine and enclave memfds exactly as a host would pass a /dev/sgx_enclave fd.
@Suite(.serialized) struct CrossProcessTests {
    @Test func ioctlsInOneProcessAndEacceptsInAnotherShareOneEPCM() throws {
        let machine = try SimulatedMachine.create(.init(epcPages: 256, enclaveCapacity: 4))
        let enclave = try SharedStateTests.emptyEnclave(machine)
        let host = try HelperProcess(machine: machine, enclave: enclave)
        for page in 16..<24 {
            #expect(try host.send(#"{"op":"eaccept","enclave":"A","page":\#(page),"flags":523}"#) == #"{"ret":0}"#)
            #expect(try host.send(#"{"op":"write","enclave":"A","page":\#(page),"value":\#(page * 1000)}"#) == #"{"ok":true}"#)
        }
        let cpu = try enclave.cpu()
        for page: UInt64 in 16..<24 {
            #expect(enclave.pageInfo(offset: page * 4096).state == .reg)
            #expect(try cpu.read(enclave.base + page * 4096).get() == page * 1000)
        }
        var trim = ModifyTypesParams(offset: 16 * 4096, length: 8 * 4096, pageType: 4)
        #expect(enclave.modifyTypes(&trim) == 0)
        #expect(trim.count == 8 * 4096)
        for page in 16..<24 {
            #expect(try host.send(#"{"op":"eaccept","enclave":"A","page":\#(page),"flags":1040}"#) == #"{"ret":0}"#)
        }
        var remove = RemovePagesParams(offset: 16 * 4096, length: 8 * 4096)
        #expect(enclave.removePages(&remove) == 0)
        #expect(remove.count == 8 * 4096)
        #expect(try host.send(#"{"op":"state","enclave":"A","page":20}"#) == #"{"state":"hole","perms":"---"}"#)
        let counters = enclave.counters
        #expect(counters[.eaug] == 8)
        #expect(counters[.eaccept] == 16)
        #expect(counters[.etrack] == 8)
        // Both processes mapped the enclave: each ETRACK interrupts both.
        #expect(counters[.ipis] == 16)
        #expect(machine.checkInvariants(enclaves: [enclave]).isEmpty)
    }

    @Test func anETRACKInterruptsOnlyTheProcessesThatMappedTheEnclave() throws {
        let machine = try SimulatedMachine.create(.init(epcPages: 64, enclaveCapacity: 4))
        let base: UInt64 = 1 << 30
        // This process holds the descriptor and runs ioctls, as edmmd does; it never maps.
        let enclave = try SimulatedEnclave.create(machine: machine, base: base, size: 64 * 4096)
        #expect(enclave.initialize() == 0)
        let host = try HelperProcess(machine: machine, enclave: enclave)
        #expect(try host.send(#"{"op":"eaccept","enclave":"A","page":1,"flags":523}"#) == #"{"ret":0}"#)
        var trim = ModifyTypesParams(offset: 4096, length: 4096, pageType: 4)
        #expect(enclave.modifyTypes(&trim) == 0)
        #expect(enclave.counters[.etrack] == 1)
        #expect(enclave.counters[.ipis] == 1)  // sgx_encl_cpumask(): the host's mm alone
        #expect(enclave.mmap(address: base, length: 4096, protection: .rw) == 0)
        #expect(try host.send(#"{"op":"eaccept","enclave":"A","page":1,"flags":1040}"#) == #"{"ret":0}"#)
        var remove = RemovePagesParams(offset: 4096, length: 4096)
        #expect(enclave.removePages(&remove) == 0)
        #expect(try host.send(#"{"op":"eaccept","enclave":"A","page":2,"flags":523}"#) == #"{"ret":0}"#)
        trim = ModifyTypesParams(offset: 2 * 4096, length: 4096, pageType: 4)
        #expect(enclave.modifyTypes(&trim) == 0)
        #expect(enclave.counters[.etrack] == 2)
        #expect(enclave.counters[.ipis] == 3)  // and this process too, once it mapped the enclave
    }

    @Test func anIoctlFromAnotherProcessDuringAnIoctlGetsEBUSY() throws {
        let machine = try SimulatedMachine.create(.init(epcPages: 64, enclaveCapacity: 4))
        let enclave = try SharedStateTests.emptyEnclave(machine)
        let cpu = try enclave.cpu()
        for page: UInt64 in 0..<3 {
            #expect(cpu.eaccept(enclave.base + page * 4096, flags: SharedStateTests.regPendingRW) == .success)
        }
        let host = try HelperProcess(machine: machine, enclave: enclave)
        let answer = Mutex<String?>(nil)
        enclave.setPageBoundaryHook { _ in
            let reply = try? host.send(
                #"{"op":"ioctl","enclave":"A","cmd":"restrict_permissions","offset":8192,"length":4096,"permissions":1}"#)
            answer.withLock { $0 = reply }
        }
        var restrict = RestrictPermissionsParams(offset: 0, length: 8192, permissions: 1)
        let rc = enclave.restrictPermissions(&restrict)
        enclave.setPageBoundaryHook(nil)
        #expect(rc == 0)
        #expect(restrict.count == 8192)
        #expect(answer.withLock { $0 } == #"{"rc":-1,"errno":"EBUSY","count":0,"result":0}"#)
        #expect(enclave.pageInfo(offset: 8192).state == .reg)
        #expect(enclave.counters[.ioctlBusy] == 1)
        // Once the first ioctl is done the same request succeeds.
        #expect(
            try host.send(#"{"op":"ioctl","enclave":"A","cmd":"restrict_permissions","offset":8192,"length":4096,"permissions":1}"#)
                == #"{"rc":0,"errno":null,"count":4096,"result":0}"#)
    }

    @Test func oversubscriptionEvictsPagesAndTheirContentsSurvive() throws {
        let epc: UInt64 = 32
        let machine = try SimulatedMachine.create(.init(epcPages: epc, enclaveCapacity: 4))
        let enclave = try SharedStateTests.emptyEnclave(machine, pages: 256)
        let host = try HelperProcess(machine: machine, enclave: enclave)
        for page in 0..<128 {
            #expect(try host.send(#"{"op":"eaccept","enclave":"A","page":\#(page),"flags":523}"#) == #"{"ret":0}"#)
            #expect(try host.send(#"{"op":"write","enclave":"A","page":\#(page),"value":\#(page * 7 + 1)}"#) == #"{"ok":true}"#)
        }
        let afterHost = machine.stats
        #expect(afterHost.usedPages == epc)
        // The SECS and a VA page are never evicted while the enclave has pages in the EPC.
        #expect(afterHost.ewb >= 128 - (epc - 2))
        #expect(enclave.epcUsage == EPCUsage(enclavePages: epc - 2, secsPages: 1, vaPages: 1))
        #expect(enclave.presentPages == 128)
        let cpu = try enclave.cpu()
        for page: UInt64 in 0..<128 {
            #expect(try cpu.read(enclave.base + page * 4096).get() == page * 7 + 1)
        }
        #expect(machine.stats.eldu > afterHost.eldu)
        #expect(enclave.counters[.ewb] == machine.stats.ewb)
        // A trim of every page reloads the evicted ones; the oversubscribed path never EAGAINs.
        var trim = ModifyTypesParams(offset: 0, length: 128 * 4096, pageType: 4)
        #expect(enclave.modifyTypes(&trim) == 0)
        #expect(trim.count == 128 * 4096)
        #expect(machine.checkInvariants(enclaves: [enclave]).isEmpty)
    }

    @Test func anEnclaveWhoseLastProcessDiedIsReleasedBySweep() throws {
        let machine = try SimulatedMachine.create(.init(epcPages: 64, enclaveCapacity: 4))
        let enclave = try SharedStateTests.emptyEnclave(machine)
        let host = try HelperProcess(machine: machine, enclave: enclave)
        for page in 0..<5 {
            #expect(try host.send(#"{"op":"eaccept","enclave":"A","page":\#(page),"flags":523}"#) == #"{"ret":0}"#)
        }
        enclave.close()
        #expect(machine.sweepDeadEnclaves() == 0)
        #expect(machine.stats.aliveEnclaves == 1)
        #expect(machine.stats.usedPages == 5 + 2)  // and the SECS and a VA page
        host.kill()
        #expect(machine.sweepDeadEnclaves() == 1)
        #expect(machine.stats.aliveEnclaves == 0)
        #expect(machine.stats.usedPages == 0)
        #expect(machine.checkInvariants().isEmpty)
    }

    @Test func closingAnEnclaveReleasesItIfItsOtherHoldersDiedAndLeavesOtherEnclavesToTheSweep() throws {
        let machine = try SimulatedMachine.create(.init(epcPages: 64, enclaveCapacity: 4))
        let first = try SharedStateTests.emptyEnclave(machine)
        let second = try SharedStateTests.emptyEnclave(machine)
        let firstHost = try HelperProcess(machine: machine, enclave: first)
        let secondHost = try HelperProcess(machine: machine, enclave: second)
        firstHost.kill()
        secondHost.kill()
        // One enclave's holders are checked, not the whole table (a daemon closes one at a time).
        first.closeReleasingIfOrphaned()
        #expect(machine.stats.aliveEnclaves == 1)
        #expect(second.machine.sweepDeadEnclaves() == 0)  // this process still holds the second
        second.closeReleasingIfOrphaned()
        #expect(machine.stats.aliveEnclaves == 0)
        #expect(machine.stats.usedPages == 0)
        #expect(machine.checkInvariants().isEmpty)
    }

    @Test func aProcessThatDiesHoldingTheLocksLeavesThemUsable() throws {
        let machine = try SimulatedMachine.create(.init(epcPages: 16, enclaveCapacity: 4))
        let enclave = try SharedStateTests.emptyEnclave(machine)
        let host = try HelperProcess(machine: machine, enclave: enclave)
        #expect(try host.send(#"{"op":"eaccept","enclave":"A","page":0,"flags":523}"#) == #"{"ret":0}"#)
        #expect(throws: HelperProcess.Failure.self) {
            try host.send(#"{"op":"die_holding_lock","enclave":"A","type":"machine"}"#)
        }
        host.kill()
        // Both robust mutexes are now owned by a dead process; the next lockers recover them.
        let cpu = try enclave.cpu()
        #expect(cpu.eaccept(enclave.base + 4096, flags: SharedStateTests.regPendingRW) == .success)
        #expect(machine.stats.lockRecoveries == 1)
        #expect(machine.stats.usedPages == 2 + 2)  // and the SECS and a VA page
        #expect(machine.checkInvariants(enclaves: [enclave]).isEmpty)
    }
}
