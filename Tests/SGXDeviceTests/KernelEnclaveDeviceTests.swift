import SGXDevice
import SGXKernel
import SGXKernelTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct KernelEnclaveDeviceTests {
    @Test func eachIoctlReachesTheDescriptorWithTheStructAsPassed() throws {
        let (device, kernel) = try makeFakeKernelEnclave(replies: [
            .processed(errno: 0, count: page), .processed(errno: 0, count: 2 * page), .processed(errno: 0, count: page),
        ])
        var restrict = RestrictPermissionsParams(offset: page, length: page, permissions: 1)
        var modify = ModifyTypesParams(offset: 2 * page, length: 2 * page, pageType: 4)
        var remove = RemovePagesParams(offset: 3 * page, length: page)

        #expect(device.restrictPermissions(&restrict) == 0)
        #expect(device.modifyTypes(&modify) == 0)
        #expect(device.removePages(&remove) == 0)
        #expect(device.kind == .kernel)
        #expect(
            kernel.ioctlCalls == [
                .restrictPermissions(
                    fd: device.descriptor, RestrictPermissionsParams(offset: page, length: page, permissions: 1)),
                .modifyTypes(fd: device.descriptor, ModifyTypesParams(offset: 2 * page, length: 2 * page, pageType: 4)),
                .removePages(fd: device.descriptor, RemovePagesParams(offset: 3 * page, length: page)),
            ])
    }

    @Test func failureBeforeCopyBackLeavesCountAndResultAsPassed() throws {
        // Non-zero count/result on input are EINVAL, and the kernel copies nothing back.
        let (device, _) = try makeFakeKernelEnclave(replies: [.rejected(errno: EINVAL)])
        var params = ModifyTypesParams(offset: 0, length: page, pageType: 4, result: 7, count: 4096)

        #expect(device.modifyTypes(&params) == EINVAL)
        #expect(params == ModifyTypesParams(offset: 0, length: page, pageType: 4, result: 7, count: 4096))
    }

    @Test func partialFailureCopiesCountAndResultBack() throws {
        let (device, _) = try makeFakeKernelEnclave(replies: [.processed(errno: EFAULT, count: 3 * page, result: 20)])
        var params = RestrictPermissionsParams(offset: 0, length: 8 * page, permissions: 0)

        #expect(device.restrictPermissions(&params) == EFAULT)
        #expect(params.count == 3 * page)
        #expect(params.result == 20)
    }

    @Test func workerFailureWithoutSGXErrorCodeLeavesResultAlone() throws {
        // A hole in the range: EFAULT with `count` written and `result` untouched.
        let (device, _) = try makeFakeKernelEnclave(replies: [.processed(errno: EFAULT, count: page)])
        var params = ModifyTypesParams(offset: 0, length: 2 * page, pageType: 4)

        #expect(device.modifyTypes(&params) == EFAULT)
        #expect(params.count == page)
        #expect(params.result == 0)
    }

    @Test func deviceClosesItsDescriptorWhenReleased() throws {
        let kernel = FakeSyscalls()
        kernel.addFile(SGXDeviceNode.defaultPath, FileStatus(kind: .characterDevice, device: fakeSGXDevice))
        let fd = kernel.addDescriptor(FileStatus(kind: .characterDevice, device: fakeSGXDevice))
        do {
            let device = try KernelEnclaveDevice(adopting: fd, syscalls: kernel)
            #expect(device.deviceNumber == fakeSGXDevice)
            #expect(kernel.openDescriptors == [fd])
        }
        #expect(kernel.closedDescriptors == [fd])
        #expect(kernel.openDescriptors.isEmpty)
    }

    @Test func adoptingADescriptorThatIsNotAnEnclaveLeavesItOpen() throws {
        let kernel = FakeSyscalls()
        kernel.addFile(SGXDeviceNode.defaultPath, FileStatus(kind: .characterDevice, device: fakeSGXDevice))
        let memfd = kernel.addDescriptor(FileStatus(kind: .regularFile))

        #expect(throws: EnclaveDescriptorError.notACharacterDevice(fd: memfd, kind: .regularFile)) {
            try KernelEnclaveDevice(adopting: memfd, syscalls: kernel)
        }
        #expect(kernel.openDescriptors == [memfd])
        #expect(kernel.closedDescriptors.isEmpty)
    }

    @Test func realIoctlOnANonSGXDeviceFailsWithENOTTYAndTouchesNothing() throws {
        // Through the C shim and the real kernel: /dev/null knows no SGX ioctl.
        let fd = try openPath("/dev/null", O_RDWR | O_CLOEXEC)
        defer { close(fd) }
        var params = ModifyTypesParams(offset: 0, length: page, pageType: 4, result: 3, count: 5)

        #expect(LinuxSyscalls().modifyTypes(fd, &params) == ENOTTY)
        #expect(params == ModifyTypesParams(offset: 0, length: page, pageType: 4, result: 3, count: 5))
    }

    @Test func realIoctlOnAClosedDescriptorFailsWithEBADF() throws {
        let fd = try closedDescriptor(slot: 2)
        var restrict = RestrictPermissionsParams(offset: 0, length: page, permissions: 1)
        var remove = RemovePagesParams(offset: 0, length: page)

        #expect(LinuxSyscalls().restrictPermissions(fd, &restrict) == EBADF)
        #expect(LinuxSyscalls().removePages(fd, &remove) == EBADF)
    }
}
