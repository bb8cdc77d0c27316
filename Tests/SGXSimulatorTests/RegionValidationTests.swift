import CEDMMShims
import Glibc
import SGXSimulator
import Testing

/// A descriptor or region that is not exactly one of ours is rejected with a precise error,
/// before anything in it is trusted.
@Suite struct RegionValidationTests {
    let machine: SimulatedMachine

    init() throws { machine = try SimulatedMachine.create(.init(epcPages: 64, enclaveCapacity: 8)) }

    @Test func openingAPipeFailsWithNotARegion() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { fds.forEach { close($0) } }
        #expect(throws: SimulatorError.notARegion("descriptor \(fds[0]) is a pipe")) {
            try SimulatedEnclave.open(fd: fds[0], machine: machine)
        }
    }

    @Test func openingASocketFailsWithNotARegion() throws {
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue), 0, &fds) == 0)
        defer { fds.forEach { close($0) } }
        #expect(throws: SimulatorError.notARegion("descriptor \(fds[0]) is a socket")) {
            try SimulatedMachine.open(fd: fds[0])
        }
    }

    @Test func openingDevNullFailsWithNotARegion() throws {
        let fd = open("/dev/null", O_RDWR)
        defer { close(fd) }
        #expect(throws: SimulatorError.notARegion("descriptor \(fd) is a character device")) {
            try SimulatedEnclave.open(fd: fd, machine: machine)
        }
    }

    @Test func openingAClosedDescriptorFailsWithNotARegion() {
        #expect(throws: SimulatorError.notARegion("descriptor 9999 is not open")) {
            try SimulatedEnclave.open(fd: 9999, machine: machine)
        }
    }

    @Test func openingAnOrdinaryFileFailsWithBadMagic() throws {
        let fd = try memfd(copying: Array(repeating: 0x41, count: 8192), seal: true)
        defer { close(fd) }
        #expect(throws: SimulatorError.badMagic(expected: .enclave)) { try SimulatedEnclave.open(fd: fd, machine: machine) }
    }

    @Test func openingATinyFileSaysItIsTooSmall() throws {
        let fd = try memfd(copying: [1, 2, 3], seal: true)
        defer { close(fd) }
        #expect(throws: SimulatorError.notARegion("descriptor \(fd) is a 3-byte file, too small for a header")) {
            try SimulatedMachine.open(fd: fd)
        }
    }

    @Test func openingAMachineAsAnEnclaveFailsWithWrongKind() {
        #expect(throws: SimulatorError.wrongKind(expected: .enclave, found: .machine)) {
            try SimulatedEnclave.open(fd: machine.fd, machine: machine)
        }
    }

    @Test func openingAnEnclaveAsAMachineFailsWithWrongKind() throws {
        let enclave = try SimulatedEnclave.create(machine: machine, base: 1 << 20, size: 1 << 20)
        #expect(throws: SimulatorError.wrongKind(expected: .machine, found: .enclave)) {
            try SimulatedMachine.open(fd: enclave.fd)
        }
    }

    @Test func aRegionOfAnotherVersionIsRejected() throws {
        var bytes = try contents(of: machine.fd)
        bytes[8] = UInt8(EDMM_SHM_VERSION + 1)  // version field
        let fd = try memfd(copying: bytes, seal: true)
        defer { close(fd) }
        #expect(throws: SimulatorError.unsupportedVersion(found: EDMM_SHM_VERSION + 1, expected: EDMM_SHM_VERSION)) {
            try SimulatedMachine.open(fd: fd)
        }
    }

    @Test func aTruncatedRegionIsRejectedWithBothSizes() throws {
        let full = try contents(of: machine.fd)
        let fd = try memfd(copying: Array(full[0..<4096]), seal: true)
        defer { close(fd) }
        #expect(throws: SimulatorError.sizeMismatch(actual: 4096, header: UInt64(full.count))) {
            try SimulatedMachine.open(fd: fd)
        }
    }

    @Test func aRegionSmallerThanItsHeaderIsRejectedBeforeMapping() throws {
        let enclave = try SimulatedEnclave.create(machine: machine, base: 1 << 20, size: 1 << 20)
        var bytes = Array(try contents(of: enclave.fd)[0..<100])
        withUnsafeBytes(of: UInt64(100).littleEndian) { bytes.replaceSubrange(16..<24, with: $0) }  // region_size
        let fd = try memfd(copying: bytes, seal: true)
        defer { close(fd) }
        let headerSize = MemoryLayout<edmm_enclave_header>.size
        #expect(throws: SimulatorError.corruptHeader("region of 100 bytes is smaller than its \(headerSize)-byte header")) {
            try SimulatedEnclave.open(fd: fd, machine: machine)
        }
    }

    @Test func anUnsealedRegionIsRejected() throws {
        let fd = try memfd(copying: try contents(of: machine.fd), seal: false)
        defer { close(fd) }
        #expect(throws: SimulatorError.notSealed) { try SimulatedMachine.open(fd: fd) }
    }

    @Test func aMachineWithInconsistentOffsetsIsRejected() throws {
        var bytes = try contents(of: machine.fd)
        bytes[24] &+= 8  // slots_offset
        let fd = try memfd(copying: bytes, seal: true)
        defer { close(fd) }
        #expect(throws: SimulatorError.corruptHeader("table offsets do not match an EPC of 64 pages")) {
            try SimulatedMachine.open(fd: fd)
        }
    }

    @Test func anEnclaveOfAnotherMachineIsRejected() throws {
        let other = try SimulatedMachine.create(.init(epcPages: 16, enclaveCapacity: 2))
        let enclave = try SimulatedEnclave.create(machine: other, base: 1 << 20, size: 1 << 20)
        #expect(throws: SimulatorError.wrongMachine) { try SimulatedEnclave.open(fd: enclave.fd, machine: machine) }
    }

    @Test func aReleasedEnclaveCannotBeOpened() throws {
        let enclave = try SimulatedEnclave.create(machine: machine, base: 1 << 20, size: 1 << 20)
        enclave.close()
        #expect(throws: SimulatorError.enclaveReleased(index: 0)) { try SimulatedEnclave.open(fd: enclave.fd, machine: machine) }
    }

    @Test func ecreateRefusesASizeThatIsNotAPowerOfTwo() {
        #expect(throws: SimulatorError.invalidConfiguration("ECREATE: ELRANGE size 12288 is not a power of two (EINVAL)")) {
            try SimulatedEnclave.create(machine: machine, base: 0, size: 12288)
        }
    }

    @Test func ecreateRefusesAnELRANGEOfOnePageAsTheInstructionDoes() throws {
        #expect(throws: SimulatorError.invalidConfiguration("ECREATE: ELRANGE size 4096 is under two pages: ECREATE #GP (EIO)")) {
            try SimulatedEnclave.create(machine: machine, base: 4096, size: 4096)
        }
        #expect(machine.stats.aliveEnclaves == 0)
        #expect(try SimulatedEnclave.create(machine: machine, base: 8192, size: 8192).size == 8192)
    }

    @Test func ecreateRefusesABaseNotAlignedToTheSize() {
        #expect(throws: SimulatorError.invalidConfiguration("ECREATE: base 0x1000 is not aligned to the size")) {
            try SimulatedEnclave.create(machine: machine, base: 4096, size: 8192)
        }
    }

    @Test func aMachineWithoutEPCIsRefused() {
        #expect(throws: SimulatorError.invalidConfiguration("EPC size must be 1...2147483648 pages")) {
            try SimulatedMachine.create(.init(epcPages: 0))
        }
    }

    @Test func theEnclaveTableFillsUpWithATypedError() throws {
        let small = try SimulatedMachine.create(.init(epcPages: 8, enclaveCapacity: 1))
        let first = try SimulatedEnclave.create(machine: small, base: 1 << 20, size: 1 << 20)
        #expect(throws: SimulatorError.machineFull(enclaveCapacity: 1)) {
            try SimulatedEnclave.create(machine: small, base: 1 << 20, size: 1 << 20)
        }
        first.close()
    }

    // MARK: Helpers

    private func contents(of fd: Int32) throws -> [UInt8] {
        var st = stat()
        #expect(fstat(fd, &st) == 0)
        var bytes = [UInt8](repeating: 0, count: Int(st.st_size))
        let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        #expect(n == bytes.count)
        return bytes
    }

    private func memfd(copying bytes: [UInt8], seal: Bool) throws -> Int32 {
        let fd = edmm_memfd_create("test-region", 1)
        #expect(fd >= 0)
        let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        #expect(n == bytes.count)
        if seal { #expect(edmm_seal_size(fd) == 0) }
        return fd
    }
}
