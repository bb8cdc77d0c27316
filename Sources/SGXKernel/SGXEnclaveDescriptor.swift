#if canImport(Glibc)
    import Glibc
#endif

/// Where the in-kernel driver (Linux >= 5.11) puts the enclave device.
public enum SGXDeviceNode {
    public static let defaultPath = "/dev/sgx_enclave"
}

/// Recognises a descriptor of the kernel's SGX enclave device.
public enum SGXEnclaveDescriptor {
    /// Succeeds when `fd` is a character device with the device number of `devicePath`, i.e. an
    /// open `/dev/sgx_enclave`. Whether an enclave was created and initialized on it is for
    /// the ioctls to tell. Returns the device number.
    public static func check(
        _ fd: Int32, syscalls: some Syscalls, devicePath: String = SGXDeviceNode.defaultPath
    ) throws(EnclaveDescriptorError) -> DeviceNumber {
        let status: FileStatus
        do {
            status = try syscalls.fstat(fd)
        } catch {
            throw error.errno == EBADF ? .badDescriptor(fd: fd) : .fstatFailed(fd: fd, errno: error.errno)
        }
        guard status.kind == .characterDevice else { throw .notACharacterDevice(fd: fd, kind: status.kind) }

        let node: FileStatus
        do {
            node = try syscalls.stat(devicePath)
        } catch {
            throw .sgxDeviceNodeUnavailable(
                fd: fd, device: status.device, path: devicePath, problem: .statFailed(errno: error.errno))
        }
        guard node.kind == .characterDevice else {
            throw .sgxDeviceNodeUnavailable(
                fd: fd, device: status.device, path: devicePath, problem: .notACharacterDevice(node.kind))
        }
        guard node.device == status.device else {
            throw .otherCharacterDevice(fd: fd, device: status.device, sgxDevice: node.device, path: devicePath)
        }
        return status.device
    }
}
