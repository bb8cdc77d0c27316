import EDMMSystem
import SGXDevice

/// An enclave on the kernel's SGX driver: the three SGX2 ioctls on its `/dev/sgx_enclave`
/// descriptor, exactly as the kernel answers them (errno, and `count`/`result` copied back only
/// where the kernel copies them back). No retries here; `IoctlRunner` does them.
///
/// The device owns its descriptor and closes it when released. Like the kernel, it answers a
/// concurrent ioctl on the same enclave with EBUSY, so callers serialize.
public final class KernelEnclaveDevice: EnclaveDevice {
    public var kind: EnclaveDeviceKind { .kernel }
    public let descriptor: Int32
    /// The SGX device's number, as found by `SGXEnclaveDescriptor.check`.
    public let deviceNumber: DeviceNumber
    private let syscalls: any Syscalls

    /// Takes ownership of `fd` once it is shown to be an SGX enclave descriptor; on failure the
    /// descriptor is left open and untouched (the caller may try it as a simulated enclave).
    public init(
        adopting fd: Int32, syscalls: any Syscalls = LinuxSyscalls(), devicePath: String = SGXDeviceNode.defaultPath
    ) throws(EnclaveDescriptorError) {
        deviceNumber = try SGXEnclaveDescriptor.check(fd, syscalls: syscalls, devicePath: devicePath)
        descriptor = fd
        self.syscalls = syscalls
    }

    /// Takes over `descriptor`, which `SGXEnclaveDescriptor.check` found to be an enclave of the
    /// SGX device `deviceNumber`.
    public init(owning descriptor: consuming OwnedDescriptor, deviceNumber: DeviceNumber, syscalls: any Syscalls) {
        self.deviceNumber = deviceNumber
        self.descriptor = descriptor.take()
        self.syscalls = syscalls
    }

    /// Whether `other` is this enclave: both descriptors name the same open file (kcmp(2)). Every
    /// open(2) of /dev/sgx_enclave creates an enclave of its own, and its descriptor is the only way
    /// to it; dup(2) and SCM_RIGHTS hand out more descriptors of the same file, so file identity is
    /// enclave identity. (st_ino is not: every descriptor of the device shares its one inode.)
    public func isSameEnclave(as other: KernelEnclaveDevice) throws(SystemCallError) -> Bool {
        try syscalls.sameOpenFile(descriptor, other.descriptor)
    }

    deinit {
        // A failed close(2) still releases the descriptor on Linux; there is nothing to retry.
        try? syscalls.close(descriptor)
    }

    public func restrictPermissions(_ params: inout RestrictPermissionsParams) -> Int32 {
        syscalls.restrictPermissions(descriptor, &params)
    }

    public func modifyTypes(_ params: inout ModifyTypesParams) -> Int32 {
        syscalls.modifyTypes(descriptor, &params)
    }

    public func removePages(_ params: inout RemovePagesParams) -> Int32 {
        syscalls.removePages(descriptor, &params)
    }
}
