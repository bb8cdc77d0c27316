import SGXDevice
import SGXKernel
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A kernel enclave is its open file: descriptors that share one (dup(2), SCM_RIGHTS) are one
/// enclave, two opens of /dev/sgx_enclave are two, whatever the descriptor numbers.
@Suite struct EnclaveIdentityTests {
    @Test func descriptorsOfOneOpenFileAreOneEnclaveAndTwoOpensAreTwo() throws {
        let (device, kernel) = try makeFakeKernelEnclave()
        let sameFile = try #require(kernel.duplicate(device.descriptor))
        let again = try KernelEnclaveDevice(adopting: sameFile, syscalls: kernel)
        let otherFile = kernel.addDescriptor(FileStatus(kind: .characterDevice, device: fakeSGXDevice))
        let other = try KernelEnclaveDevice(adopting: otherFile, syscalls: kernel)
        #expect(try device.isSameEnclave(as: again))
        #expect(try again.isSameEnclave(as: device))
        #expect(try !device.isSameEnclave(as: other))
    }

    @Test func aKernelThatCannotCompareSaysWhyWithItsErrno() throws {
        let (device, kernel) = try makeFakeKernelEnclave()
        let other = try KernelEnclaveDevice(adopting: try #require(kernel.duplicate(device.descriptor)), syscalls: kernel)
        kernel.failKcmp(errno: ENOSYS)
        #expect(throws: SystemCallError("kcmp", errno: ENOSYS)) { try device.isSameEnclave(as: other) }
    }

    /// The real kcmp(2) on real descriptors: /dev/null opened twice and duplicated once.
    @Test func theRealKcmpTellsOpenFilesApart() throws {
        let first = try openPath("/dev/null")
        let duplicate = dup(first)
        let second = try openPath("/dev/null")
        defer { [first, duplicate, second].forEach { _ = close($0) } }
        let linux = LinuxSyscalls()
        #expect(try linux.sameOpenFile(first, duplicate))
        #expect(try !linux.sameOpenFile(first, second))
        #expect(throws: SystemCallError("kcmp", errno: EBADF)) { try linux.sameOpenFile(first, -1) }
    }
}
