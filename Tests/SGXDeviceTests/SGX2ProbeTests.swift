import SGXDevice
import SGXKernel
import SGXKernelTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct SGX2ProbeTests {
    @Test(arguments: [
        (EINVAL, SGX2Support.supported), (ENOTTY, .kernelTooOld), (ENODEV, .noSGX2),
        (EBUSY, .unexpected(errno: EBUSY)), (EFAULT, .unexpected(errno: EFAULT)),
    ])
    func probeOnAnEnclaveMapsTheKernelsErrno(errno: Int32, expected: SGX2Support) throws {
        let (device, _) = try makeFakeKernelEnclave(replies: [.rejected(errno: errno)])
        #expect(device.probeSGX2() == expected)
    }

    @Test func probeThatSucceedsIsUnexpected() throws {
        let (device, _) = try makeFakeKernelEnclave(replies: [.processed(errno: 0, count: 0)])
        #expect(device.probeSGX2() == .unexpected(errno: 0))
    }

    @Test func probeIsModifyTypesWithAnAllZeroStruct() throws {
        let (device, kernel) = try makeFakeKernelEnclave(replies: [.rejected(errno: EINVAL)])
        _ = device.probeSGX2()
        #expect(
            kernel.ioctlCalls == [
                .modifyTypes(
                    fd: device.descriptor, ModifyTypesParams(offset: 0, length: 0, pageType: 0, result: 0, count: 0))
            ])
    }
}

@Suite struct SGXHostSupportTests {
    let sgx2CPU: CPUSGXFeatures = [.sgx, .sgx1, .sgx2, .launchControl]

    func kernelWithDeviceNode(cpu: CPUSGXFeatures) -> FakeSyscalls {
        let kernel = FakeSyscalls(cpu: cpu)
        kernel.addFile(SGXDeviceNode.defaultPath, FileStatus(kind: .characterDevice, device: fakeSGXDevice))
        return kernel
    }

    @Test func machineWithoutTheDeviceNodeIsNotUsable() {
        let support = SGXHostSupport.check(syscalls: FakeSyscalls())
        #expect(!support.isUsable)
        #expect(support.device == .missing(errno: ENOENT))
        #expect(support.reason == "/dev/sgx_enclave does not exist; CPUID: no SGX")
    }

    @Test func deviceNodeThatIsNotACharacterDeviceIsNotUsable() {
        let kernel = FakeSyscalls()
        kernel.addFile(SGXDeviceNode.defaultPath, FileStatus(kind: .regularFile))
        let support = SGXHostSupport.check(syscalls: kernel)
        #expect(support.device == .notACharacterDevice(.regularFile))
        #expect(!support.isUsable)
    }

    @Test func deviceThatCannotBeOpenedIsNotUsable() {
        let kernel = kernelWithDeviceNode(cpu: sgx2CPU)
        kernel.failOpen(SGXDeviceNode.defaultPath, errno: EACCES)
        let support = SGXHostSupport.check(syscalls: kernel)
        #expect(support.device == .cannotOpen(errno: EACCES))
        #expect(!support.isUsable)
        #expect(support.reason == "cannot open /dev/sgx_enclave: EACCES; CPUID: SGX1 SGX2 FLC")
    }

    @Test func einvalFromTheProbeMeansUsable() {
        let kernel = kernelWithDeviceNode(cpu: sgx2CPU)
        kernel.script([.rejected(errno: EINVAL)])
        let support = SGXHostSupport.check(syscalls: kernel)
        #expect(support.isUsable)
        #expect(support.reason == "/dev/sgx_enclave: SGX2 supported; CPUID: SGX1 SGX2 FLC")
    }

    @Test func enodevFromTheProbeMeansNoSGX2() {
        let kernel = kernelWithDeviceNode(cpu: [.sgx, .sgx1, .launchControl])
        kernel.script([.rejected(errno: ENODEV)])
        let support = SGXHostSupport.check(syscalls: kernel)
        #expect(support.device == .probed(.noSGX2))
        #expect(!support.isUsable)
        #expect(support.reason == "/dev/sgx_enclave: the kernel reports no SGX2 on this CPU (ENODEV); CPUID: SGX1 FLC")
    }

    @Test func enottyFromTheProbeMeansKernelTooOld() {
        let kernel = kernelWithDeviceNode(cpu: sgx2CPU)
        kernel.script([.rejected(errno: ENOTTY)])
        let support = SGXHostSupport.check(syscalls: kernel)
        #expect(support.device == .probed(.kernelTooOld))
        #expect(!support.isUsable)
    }

    @Test func probeClosesTheDescriptorItOpened() {
        let kernel = kernelWithDeviceNode(cpu: sgx2CPU)
        kernel.script([.rejected(errno: EINVAL)])
        _ = SGXHostSupport.check(syscalls: kernel)
        #expect(kernel.ioctlCalls.count == 1)
        #expect(kernel.closedDescriptors.count == 1)
        #expect(kernel.openDescriptors.isEmpty)
    }

    @Test func realCheckOfAMissingNodeReportsENOENT() {
        let support = SGXHostSupport.check(syscalls: LinuxSyscalls(), devicePath: "/nonexistent/sgx_enclave")
        #expect(support.device == .missing(errno: ENOENT))
        #expect(!support.isUsable)
    }

    @Test func realCheckOfACharacterDeviceWithoutSGXIoctlsReportsKernelTooOld() {
        // /dev/null answers ENOTTY to every SGX ioctl, like a kernel older than 6.0.
        let support = SGXHostSupport.check(syscalls: LinuxSyscalls(), devicePath: "/dev/null")
        #expect(support.device == .probed(.kernelTooOld))
    }

    @Test func cpuidReportsSGXVersionsOnlyWhenSGXIsEnumerated() {
        let cpu = CPUSGXFeatures.current
        if !cpu.contains(.sgx) { #expect(cpu.isEmpty) }
        if cpu.contains(.sgx2) { #expect(cpu.contains(.sgx)) }
    }
}
