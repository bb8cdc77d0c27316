import Glibc
import SGXDevice
import SGXSimulator
import Testing

/// State lives in the shared regions, not in the object that changed it.
@Suite struct SharedStateTests {
    static let regPendingRW = SecInfoFlags([.pageType(.reg), .pending, .r, .w])

    /// An initialized enclave of `pages` pages with nothing added, mapped RW.
    static func emptyEnclave(
        _ machine: SimulatedMachine, pages: UInt64 = 64, base: UInt64 = 1 << 30
    ) throws -> SimulatedEnclave {
        let enclave = try SimulatedEnclave.create(machine: machine, base: base, size: pages * 4096)
        #expect(enclave.initialize() == 0)
        #expect(enclave.mmap(address: base, length: pages * 4096, protection: .rw) == 0)
        return enclave
    }

    @Test func aSecondHandleSeesPagesAndCountersChangedThroughTheFirst() throws {
        let machine = try SimulatedMachine.create(.init(epcPages: 64, enclaveCapacity: 4))
        let enclave = try Self.emptyEnclave(machine)
        let daemonView = try SimulatedEnclave.open(fd: enclave.fd, machine: machine, mapContents: false)
        let cpu = try enclave.cpu()
        #expect(cpu.eaccept(enclave.base + 4096, flags: Self.regPendingRW) == .success)
        #expect(daemonView.pageInfo(offset: 4096).state == .reg)
        #expect(daemonView.counters[.eaug] == 1)
        #expect(daemonView.counters[.eaccept] == 1)
        var trim = ModifyTypesParams(offset: 4096, length: 4096, pageType: 4)
        #expect(daemonView.modifyTypes(&trim) == 0)
        #expect(enclave.pageInfo(offset: 4096).state == .trimModified)
        // Two processes... here two handles of one process: one attachment, so one IPI per ETRACK.
        #expect(enclave.counters[.ipis] == 1)
    }

    @Test func aMetadataOnlyHandleHasNoCPU() throws {
        let machine = try SimulatedMachine.create(.init(epcPages: 8, enclaveCapacity: 2))
        let enclave = try Self.emptyEnclave(machine)
        let view = try SimulatedEnclave.open(fd: enclave.fd, machine: machine, mapContents: false)
        #expect(throws: SimulatorError.contentsNotMapped) { try view.cpu() }
    }

    @Test func closingTheLastHandleReleasesTheEnclavesEPC() throws {
        let machine = try SimulatedMachine.create(.init(epcPages: 64, enclaveCapacity: 4))
        let enclave = try Self.emptyEnclave(machine)
        let cpu = try enclave.cpu()
        for page: UInt64 in 0..<10 {
            #expect(cpu.eaccept(enclave.base + page * 4096, flags: Self.regPendingRW) == .success)
        }
        // Ten pages, the SECS and a VA page.
        #expect(machine.stats.usedPages == 12)
        #expect(enclave.epcUsage == EPCUsage(enclavePages: 10, secsPages: 1, vaPages: 1))
        let second = try SimulatedEnclave.open(fd: enclave.fd, machine: machine, mapContents: false)
        enclave.close()
        #expect(machine.stats.usedPages == 12)
        second.close()
        #expect(machine.stats.usedPages == 0)
        #expect(machine.stats.aliveEnclaves == 0)
        #expect(machine.checkInvariants().isEmpty)
    }

    @Test func aTerabyteEnclaveWithAFewPagesCostsAFewPagesOfMemory() throws {
        let machine = try SimulatedMachine.create(.init(epcPages: 64, enclaveCapacity: 4))
        let size: UInt64 = 1 << 40
        let enclave = try SimulatedEnclave.create(machine: machine, base: size, size: size)
        #expect(enclave.initialize() == 0)
        #expect(enclave.mmap(address: size, length: size, protection: .rw) == 0)
        let cpu = try enclave.cpu()
        for page: UInt64 in [0, 1 << 20, 1 << 27, (1 << 28) - 1] {
            let address = size + page * 4096
            #expect(cpu.eaccept(address, flags: Self.regPendingRW) == .success)
            #expect(cpu.write(address, page).isSuccess)
        }
        var st = stat()
        #expect(fstat(enclave.fd, &st) == 0)
        let allocated = Int(st.st_blocks) * 512
        #expect(UInt64(st.st_size) > size)
        #expect(allocated < 1 << 20, "\(allocated) bytes allocated for 4 pages of a 1 TiB enclave")
        #expect(machine.checkInvariants(enclaves: [enclave]).isEmpty)
    }

    @Test func removedPagesGiveTheirMemoryBack() throws {
        let machine = try SimulatedMachine.create(.init(epcPages: 64, enclaveCapacity: 4))
        let enclave = try Self.emptyEnclave(machine)
        let cpu = try enclave.cpu()
        for page: UInt64 in 0..<32 {
            #expect(cpu.eaccept(enclave.base + page * 4096, flags: Self.regPendingRW) == .success)
            #expect(cpu.write(enclave.base + page * 4096, 0xABCD).isSuccess)
        }
        let before = allocatedBytes(enclave.fd)
        var trim = ModifyTypesParams(offset: 0, length: 32 * 4096, pageType: 4)
        #expect(enclave.modifyTypes(&trim) == 0)
        for page: UInt64 in 0..<32 {
            #expect(cpu.eaccept(enclave.base + page * 4096, flags: [.pageType(.trim), .modified]) == .success)
        }
        var remove = RemovePagesParams(offset: 0, length: 32 * 4096)
        #expect(enclave.removePages(&remove) == 0)
        #expect(before - allocatedBytes(enclave.fd) >= 32 * 4096)
    }

    private func allocatedBytes(_ fd: Int32) -> Int {
        var st = stat()
        _ = fstat(fd, &st)
        return Int(st.st_blocks) * 512
    }
}

extension Result {
    var isSuccess: Bool {
        if case .success = self { return true }
        return false
    }
}
