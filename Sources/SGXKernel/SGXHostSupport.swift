import EDMMSystem
import SGXDevice

#if canImport(Glibc)
    import Glibc
#endif

/// Whether this machine can run enclaves with SGX2 through the kernel, and why not: the
/// daemon's start-up check ("no SGX2 here (reason): using the simulated EPC").
public struct SGXHostSupport: Hashable, Sendable, CustomStringConvertible {
    public enum DeviceState: Hashable, Sendable {
        case missing(errno: Int32)
        case notACharacterDevice(FileKind)
        case cannotOpen(errno: Int32)
        /// Opened, and the SGX2 probe answered.
        case probed(SGX2Support)
    }

    public var devicePath: String
    public var device: DeviceState
    public var cpu: CPUSGXFeatures

    public init(devicePath: String, device: DeviceState, cpu: CPUSGXFeatures) {
        self.devicePath = devicePath
        self.device = device
        self.cpu = cpu
    }

    /// The kernel's answer decides: it reflects both the CPU and what the kernel enabled.
    public var isUsable: Bool { device == .probed(.supported) }

    /// One line for logs and status: what was found, device first, then CPUID.
    public var reason: String {
        let deviceText =
            switch device {
            case .missing(ENOENT): "\(devicePath) does not exist"
            case .missing(let errno): "\(devicePath) cannot be examined (\(ErrnoName.of(errno)))"
            case .notACharacterDevice(let kind): "\(devicePath) is \(kind), not a character device"
            case .cannotOpen(let errno): "cannot open \(devicePath): \(ErrnoName.of(errno))"
            case .probed(let support): "\(devicePath): \(support)"
            }
        return "\(deviceText); CPUID: \(cpu)"
    }

    public var description: String { reason }

    /// Checks `devicePath` (exists, is a character device, opens read-write) and runs the SGX2
    /// probe on a fresh descriptor with no enclave on it, as Gramine does before ECREATE: the
    /// driver answers ENODEV without SGX2 and EINVAL (uninitialized enclave) with it.
    public static func check(
        syscalls: some Syscalls = LinuxSyscalls(), devicePath: String = SGXDeviceNode.defaultPath
    ) -> SGXHostSupport {
        SGXHostSupport(
            devicePath: devicePath, device: probeDevice(syscalls: syscalls, path: devicePath),
            cpu: syscalls.cpuSGXFeatures())
    }

    private static func probeDevice(syscalls: some Syscalls, path: String) -> DeviceState {
        let node: FileStatus
        do {
            node = try syscalls.stat(path)
        } catch {
            return .missing(errno: error.errno)
        }
        guard node.kind == .characterDevice else { return .notACharacterDevice(node.kind) }
        let fd: Int32
        do {
            fd = try syscalls.open(path, flags: O_RDWR | O_CLOEXEC)
        } catch {
            return .cannotOpen(errno: error.errno)
        }
        defer { try? syscalls.close(fd) }
        return .probed(.probe { syscalls.modifyTypes(fd, &$0) })
    }
}
