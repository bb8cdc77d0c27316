import CEDMMShims
import Glibc
import PropertyBased
import SGXDevice
import SGXSimulator
import Testing

/// Random sequences of kernel and enclave operations (on a few pages, so that they meet) on two
/// enclaves sharing an EPC of 6 pages never break the EPCM invariants
/// (`SimulatedMachine.checkInvariants`), checked after every step.
@Suite struct InvariantPropertyTests {
    struct Step: CustomStringConvertible {
        var kind: Int
        var page: UInt64
        var arg: UInt64
        var description: String { "(\(kind), \(page), \(arg))" }
    }

    static let steps = zip(Gen.int(in: 0...12), Gen.int(in: 0...7), Gen.int(in: 0...7)).map {
        Step(kind: $0.0, page: UInt64($0.1), arg: UInt64($0.2))
    }

    @Test func randomOperationSequencesKeepTheEPCMInvariants() async throws {
        await propertyCheck(count: 100, input: Self.steps.array(of: 1...120)) { steps in
            let machine = try SimulatedMachine.create(.init(epcPages: 6, enclaveCapacity: 4))
            let enclaves = [
                try SharedStateTests.emptyEnclave(machine, pages: 16, base: 1 << 30),
                try SharedStateTests.emptyEnclave(machine, pages: 16, base: 1 << 31),
            ]
            for (i, step) in steps.enumerated() {
                let enclave = enclaves[i % 2]
                try Self.apply(step, to: enclave)
                let violations = machine.checkInvariants(enclaves: enclaves)
                #expect(violations.isEmpty, "after step \(i) \(step): \(violations)")
                if !violations.isEmpty { return }
            }
            #expect(machine.stats.usedPages <= 6)
        }
    }

    static func apply(_ step: Step, to enclave: SimulatedEnclave) throws {
        let cpu = try enclave.cpu()
        let address = enclave.base + step.page * 4096
        let offset = step.page * 4096
        let length = (step.arg % 3 + 1) * 4096
        let perms = SecInfoFlags(rawValue: step.arg)
        switch step.kind {
        case 0: _ = cpu.eaccept(address, flags: [.pageType(.reg), .pending, .r, .w])
        case 1: _ = cpu.write(address, step.arg)
        case 2: _ = cpu.read(address)
        case 3:
            var p = ModifyTypesParams(offset: offset, length: length, pageType: 4)
            _ = enclave.modifyTypes(&p)
        case 4: _ = cpu.eaccept(address, flags: [.pageType(.trim), .modified])
        case 5:
            var p = RemovePagesParams(offset: offset, length: length)
            _ = enclave.removePages(&p)
        case 6:
            var p = RestrictPermissionsParams(offset: offset, length: length, permissions: step.arg)
            _ = enclave.restrictPermissions(&p)
        case 7: _ = cpu.eaccept(address, flags: [.pageType(.reg), .pr, perms])
        case 8: _ = cpu.emodpe(address, flags: perms)
        case 9:
            var p = ModifyTypesParams(offset: offset, length: 4096, pageType: 1)
            _ = enclave.modifyTypes(&p)
        case 10: _ = cpu.eaccept(address, flags: [.pageType(.tcs), .modified])
        case 11: _ = cpu.eacceptcopy(address, source: enclave.base + ((step.page + 1) % 8) * 4096, flags: [.pageType(.reg), perms])
        default: _ = enclave.machine.sweepDeadEnclaves()
        }
    }

    @Test func theInvariantCheckReportsAWrongUsedCount() throws {
        let machine = try SimulatedMachine.create(.init(epcPages: 8, enclaveCapacity: 2))
        let enclave = try SharedStateTests.emptyEnclave(machine, pages: 16)
        #expect(try enclave.cpu().eaccept(enclave.base, flags: [.pageType(.reg), .pending, .r, .w]) == .success)
        #expect(machine.checkInvariants(enclaves: [enclave]).isEmpty)
        var bogus: UInt64 = 5
        let offset = MemoryLayout<edmm_machine_header>.offset(of: \edmm_machine_header.used_pages)!
        #expect(pwrite(machine.fd, &bogus, 8, off_t(offset)) == 8)
        let violations = machine.checkInvariants(enclaves: [enclave]).map(\.description)
        // The VA page, the SECS and the page.
        #expect(violations.contains("used count 5 but 3 EPC pages are occupied"))
    }

    @Test func theInvariantCheckReportsTwoEPCPagesHoldingOneAddress() throws {
        let machine = try SimulatedMachine.create(.init(epcPages: 8, enclaveCapacity: 2))
        let enclave = try SharedStateTests.emptyEnclave(machine, pages: 16)
        let cpu = try enclave.cpu()
        #expect(cpu.eaccept(enclave.base, flags: [.pageType(.reg), .pending, .r, .w]) == .success)
        #expect(cpu.eaccept(enclave.base + 4096, flags: [.pageType(.reg), .pending, .r, .w]) == .success)
        var slotsOffset: UInt64 = 0
        let field = MemoryLayout<edmm_machine_header>.offset(of: \edmm_machine_header.slots_offset)!
        #expect(pread(machine.fd, &slotsOffset, 8, off_t(field)) == 8)
        // EPC pages 0 and 1 hold the VA page and the SECS; make EPC page 3 claim enclave page 0 too.
        var page: UInt64 = 0
        #expect(pwrite(machine.fd, &page, 8, off_t(slotsOffset) + 3 * 16 + 8) == 8)
        let violations = machine.checkInvariants(enclaves: [enclave]).map(\.description)
        #expect(violations.contains("EPC pages 2 and 3 both hold page 0 of enclave 0"))
    }
}
