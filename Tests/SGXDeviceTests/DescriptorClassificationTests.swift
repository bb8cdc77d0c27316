import CEDMMShims
import SGXKernel
import SGXKernelTesting
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Which descriptors are kernel SGX enclaves. Real descriptors for the negative cases; the
/// positive case needs /dev/sgx_enclave, so it is checked with the fake and with a stand-in node.
@Suite struct DescriptorClassificationTests {
    let syscalls = LinuxSyscalls()

    @Test func regularFileIsNotAnEnclave() throws {
        let fd = try openTemporaryFile()
        defer { close(fd) }
        #expect(throws: EnclaveDescriptorError.notACharacterDevice(fd: fd, kind: .regularFile)) {
            try SGXEnclaveDescriptor.check(fd, syscalls: syscalls)
        }
    }

    @Test func pipeIsNotAnEnclave() throws {
        let (readEnd, writeEnd) = try makePipe()
        defer {
            close(readEnd)
            close(writeEnd)
        }
        #expect(throws: EnclaveDescriptorError.notACharacterDevice(fd: writeEnd, kind: .fifo)) {
            try SGXEnclaveDescriptor.check(writeEnd, syscalls: syscalls)
        }
    }

    @Test func socketIsNotAnEnclave() throws {
        let (a, b) = try makeSeqpacketPair()
        defer {
            close(a)
            close(b)
        }
        #expect(throws: EnclaveDescriptorError.notACharacterDevice(fd: a, kind: .socket)) {
            try SGXEnclaveDescriptor.check(a, syscalls: syscalls)
        }
    }

    @Test func directoryIsNotAnEnclave() throws {
        let fd = try openPath("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        defer { close(fd) }
        #expect(throws: EnclaveDescriptorError.notACharacterDevice(fd: fd, kind: .directory)) {
            try SGXEnclaveDescriptor.check(fd, syscalls: syscalls)
        }
    }

    @Test func devNullIsAnotherCharacterDevice() throws {
        let fd = try openPath("/dev/null")
        defer { close(fd) }
        // /dev/zero stands in for /dev/sgx_enclave: both are real character devices.
        #expect(
            throws: EnclaveDescriptorError.otherCharacterDevice(
                fd: fd, device: DeviceNumber(major: 1, minor: 3), sgxDevice: DeviceNumber(major: 1, minor: 5),
                path: "/dev/zero")
        ) {
            try SGXEnclaveDescriptor.check(fd, syscalls: syscalls, devicePath: "/dev/zero")
        }
    }

    @Test func devNullIsRejectedAgainstTheRealSGXNode() throws {
        let fd = try openPath("/dev/null")
        defer { close(fd) }
        let error = #expect(throws: EnclaveDescriptorError.self) {
            try SGXEnclaveDescriptor.check(fd, syscalls: syscalls)
        }
        switch error {
        case .sgxDeviceNodeUnavailable(fd, DeviceNumber(major: 1, minor: 3), "/dev/sgx_enclave", _),
            .otherCharacterDevice(fd, DeviceNumber(major: 1, minor: 3), _, "/dev/sgx_enclave"):
            break
        default:
            Issue.record("unexpected error \(String(describing: error))")
        }
    }

    @Test func descriptorOfTheDeviceNodeItselfIsAccepted() throws {
        // The rule on real device numbers: same st_rdev as the node means the same device.
        let fd = try openPath("/dev/null")
        defer { close(fd) }
        #expect(
            try SGXEnclaveDescriptor.check(fd, syscalls: syscalls, devicePath: "/dev/null")
                == DeviceNumber(major: 1, minor: 3))
    }

    @Test func descriptorReceivedOverASocketIsClassifiedLikeTheOriginal() throws {
        // The daemon's path: the host sends its enclave fd, the daemon classifies what arrives.
        let (a, b) = try makeSeqpacketPair()
        defer {
            close(a)
            close(b)
        }
        var sent = try openPath("/dev/null")
        defer { close(sent) }
        var received: Int32 = -1
        var count = 1
        var truncation: Int32 = 0
        var byte: UInt8 = 0
        #expect(edmm_send_with_fds(a, &byte, 1, &sent, 1) == 1)
        #expect(edmm_recv_with_fds(b, &byte, 1, &received, &count, &truncation) == 1)
        try #require(count == 1)
        defer { close(received) }

        #expect(received != sent)
        #expect(
            try SGXEnclaveDescriptor.check(received, syscalls: syscalls, devicePath: "/dev/null")
                == DeviceNumber(major: 1, minor: 3))
    }

    @Test func closedDescriptorIsABadDescriptor() throws {
        let fd = try closedDescriptor(slot: 1)
        #expect(throws: EnclaveDescriptorError.badDescriptor(fd: fd)) {
            try SGXEnclaveDescriptor.check(fd, syscalls: syscalls)
        }
    }

    @Test func negativeDescriptorIsABadDescriptor() {
        #expect(throws: EnclaveDescriptorError.badDescriptor(fd: -1)) {
            try SGXEnclaveDescriptor.check(-1, syscalls: syscalls)
        }
    }

    @Test func sgxEnclaveDescriptorIsAccepted() throws {
        let kernel = FakeSyscalls()
        kernel.addFile(SGXDeviceNode.defaultPath, FileStatus(kind: .characterDevice, device: fakeSGXDevice))
        let fd = kernel.addDescriptor(FileStatus(kind: .characterDevice, device: fakeSGXDevice))
        #expect(try SGXEnclaveDescriptor.check(fd, syscalls: kernel) == fakeSGXDevice)
    }

    @Test func sgxProvisionDescriptorIsAnotherCharacterDevice() throws {
        let kernel = FakeSyscalls()
        kernel.addFile(SGXDeviceNode.defaultPath, FileStatus(kind: .characterDevice, device: fakeSGXDevice))
        let provision = DeviceNumber(major: 10, minor: 126)
        let fd = kernel.addDescriptor(FileStatus(kind: .characterDevice, device: provision))
        #expect(
            throws: EnclaveDescriptorError.otherCharacterDevice(
                fd: fd, device: provision, sgxDevice: fakeSGXDevice, path: SGXDeviceNode.defaultPath)
        ) {
            try SGXEnclaveDescriptor.check(fd, syscalls: kernel)
        }
    }

    @Test func characterDeviceOnAMachineWithoutTheSGXNodeSaysSo() throws {
        let kernel = FakeSyscalls()
        let fd = kernel.addDescriptor(FileStatus(kind: .characterDevice, device: fakeSGXDevice))
        let expected = EnclaveDescriptorError.sgxDeviceNodeUnavailable(
            fd: fd, device: fakeSGXDevice, path: "/dev/sgx_enclave", problem: .statFailed(errno: ENOENT))
        #expect(throws: expected) { try SGXEnclaveDescriptor.check(fd, syscalls: kernel) }
        #expect(
            expected.description
                == "fd \(fd) is character device 10:125, but /dev/sgx_enclave cannot be examined (ENOENT), "
                + "so it cannot be an SGX enclave")
    }

    @Test func deviceNumbersSplitLikeGlibc() {
        // makedev(1, 3) and makedev(0x12345, 0x6789A) in glibc's encoding.
        #expect(DeviceNumber(rdev: 0x103) == DeviceNumber(major: 1, minor: 3))
        #expect(DeviceNumber(rdev: 0x0001_2000_6783_459A) == DeviceNumber(major: 0x12_345, minor: 0x67_89A))
    }
}
