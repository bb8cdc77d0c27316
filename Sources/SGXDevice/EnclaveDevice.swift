/// Which implementation backs an enclave descriptor.
public enum EnclaveDeviceKind: String, Sendable, Codable {
    /// A real `/dev/sgx_enclave` descriptor; the ioctls go to the Linux SGX driver.
    case kernel
    /// A simulated enclave (a memfd in the simulated EPC); the ioctls go to the simulator.
    case simulated
}

/// The three SGX2 ioctls of one enclave, with the kernel's exact calling convention.
///
/// Each call behaves like `ioctl(fd, SGX_IOC_ENCLAVE_*, &params)`: it returns 0 on success or the
/// errno of a failed call, and writes `params` back only where the kernel copies the struct back
/// to user space (never on an EINVAL from parameter validation, always once the per-page worker
/// ran). Implementations do not retry; `IoctlRunner` does.
///
/// Calls on one enclave must be serialized by the caller; a concurrent call gets EBUSY, as from
/// the kernel.
public protocol EnclaveDevice: AnyObject, Sendable {
    var kind: EnclaveDeviceKind { get }
    func modifyTypes(_ params: inout ModifyTypesParams) -> Int32
    func restrictPermissions(_ params: inout RestrictPermissionsParams) -> Int32
    func removePages(_ params: inout RemovePagesParams) -> Int32
}
