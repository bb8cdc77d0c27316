import EDMMSystem
import SGXDevice

/// Why a descriptor is not a kernel SGX enclave (`/dev/sgx_enclave`).
public enum EnclaveDescriptorError: Error, Hashable, Sendable, CustomStringConvertible {
    /// EBADF: the number names no open descriptor (closed, or never opened).
    case badDescriptor(fd: Int32)
    case fstatFailed(fd: Int32, errno: Int32)
    /// A regular file (e.g. a simulator memfd), pipe, socket, directory ...
    case notACharacterDevice(fd: Int32, kind: FileKind)
    /// A character device, but the SGX device node to compare it with cannot be used.
    case sgxDeviceNodeUnavailable(fd: Int32, device: DeviceNumber, path: String, problem: SGXDeviceNodeProblem)
    /// A character device other than the SGX enclave device (e.g. /dev/null, /dev/sgx_provision).
    case otherCharacterDevice(fd: Int32, device: DeviceNumber, sgxDevice: DeviceNumber, path: String)

    public var description: String {
        switch self {
        case .badDescriptor(let fd):
            "fd \(fd) is not an open descriptor"
        case .fstatFailed(let fd, let errno):
            "fstat of fd \(fd) failed: \(ErrnoName.of(errno))"
        case .notACharacterDevice(let fd, let kind):
            "fd \(fd) is \(kind), not an SGX enclave"
        case .sgxDeviceNodeUnavailable(let fd, let device, let path, let problem):
            "fd \(fd) is character device \(device), but \(path) \(problem), so it cannot be an SGX enclave"
        case .otherCharacterDevice(let fd, let device, let sgxDevice, let path):
            "fd \(fd) is character device \(device), not \(path) (\(sgxDevice))"
        }
    }
}

/// What is wrong with the SGX device node.
public enum SGXDeviceNodeProblem: Hashable, Sendable, CustomStringConvertible {
    case statFailed(errno: Int32)
    case notACharacterDevice(FileKind)

    public var description: String {
        switch self {
        case .statFailed(let errno): "cannot be examined (\(ErrnoName.of(errno)))"
        case .notACharacterDevice(let kind): "is \(kind), not a character device"
        }
    }
}
