#if canImport(Glibc)
    import EDMMSystem
    import Glibc
#endif

/// What an SGX2 ioctl with an all-zero struct says about SGX2 support (the kernel selftests'
/// probe, also Gramine's): the driver checks the CPU before anything else, so a zero-length
/// range reaches EINVAL only when the ioctls exist and the CPU has SGX2.
public enum SGX2Support: Hashable, Sendable, CustomStringConvertible {
    /// EINVAL: the ioctl exists and SGX2 is enabled.
    case supported
    /// ENOTTY: the kernel does not know the SGX2 ioctls (Linux < 6.0).
    case kernelTooOld
    /// ENODEV: the kernel runs on a CPU without SGX2 (or has it disabled).
    case noSGX2
    /// Any other answer, including success (errno 0), which no kernel gives to a zero length.
    case unexpected(errno: Int32)

    public init(probeErrno errno: Int32) {
        switch errno {
        case EINVAL: self = .supported
        case ENOTTY: self = .kernelTooOld
        case ENODEV: self = .noSGX2
        default: self = .unexpected(errno: errno)
        }
    }

    public var description: String {
        switch self {
        case .supported: "SGX2 supported"
        case .kernelTooOld: "the kernel lacks the SGX2 ioctls (ENOTTY: Linux older than 6.0)"
        case .noSGX2: "the kernel reports no SGX2 on this CPU (ENODEV)"
        case .unexpected(let errno):
            "unexpected answer to the SGX2 probe: \(errno == 0 ? "success" : ErrnoName.of(errno))"
        }
    }
}

extension SGX2Support {
    /// Runs SGX_IOC_ENCLAVE_MODIFY_TYPES through `modifyTypes` with an all-zero struct, as the
    /// selftests do before every SGX2 case. Harmless: a zero length is rejected before any page
    /// is touched.
    public static func probe(with modifyTypes: (inout ModifyTypesParams) -> Int32) -> SGX2Support {
        var params = ModifyTypesParams(offset: 0, length: 0, pageType: 0)
        return SGX2Support(probeErrno: modifyTypes(&params))
    }
}

extension EnclaveDevice {
    /// The SGX2 probe on this enclave.
    public func probeSGX2() -> SGX2Support { .probe(with: modifyTypes) }
}
