import EDMMCore
import EDMMProtocol
import EDMMSystem
import Glibc
import Logging
import SGXDevice
import SGXKernel

/// How kernel enclave descriptors are recognised and driven: the syscall funnel and the SGX
/// device node. Tests substitute both (a descriptor of `devicePath` is then taken for an enclave).
public struct KernelDeviceAccess: Sendable {
    public var syscalls: any Syscalls
    public var devicePath: String

    public init(syscalls: any Syscalls = LinuxSyscalls(), devicePath: String = SGXDeviceNode.defaultPath) {
        self.syscalls = syscalls
        self.devicePath = devicePath
    }

    /// The kernel enclave `descriptor` names, which takes it over; or why it is none (the
    /// descriptor is closed then).
    func open(_ descriptor: consuming OwnedDescriptor) -> Result<KernelEnclave, EnclaveDescriptorError> {
        let deviceNumber: DeviceNumber
        do {
            deviceNumber = try SGXEnclaveDescriptor.check(descriptor.raw, syscalls: syscalls, devicePath: devicePath)
        } catch {
            return .failure(error)
        }
        return .success(KernelEnclave(KernelEnclaveDevice(owning: descriptor, deviceNumber: deviceNumber, syscalls: syscalls)))
    }

    /// Whether `descriptor` is a kernel enclave, without taking it.
    func check(_ descriptor: borrowing OwnedDescriptor) -> EnclaveDescriptorError? {
        do {
            _ = try SGXEnclaveDescriptor.check(descriptor.raw, syscalls: syscalls, devicePath: devicePath)
            return nil
        } catch {
            return error
        }
    }
}

/// The Linux SGX driver: `/dev/sgx_enclave` descriptors and the kernel's EPC.
struct KernelBackend: DeviceBackend {
    let reason: String
    let epcTotalPages: UInt64
    let access: KernelDeviceAccess
    let reclaimer = KsgxdActivity()

    init(reason: String, access: KernelDeviceAccess) {
        self.reason = reason
        self.access = access
        epcTotalPages = KernelEPCSize.totalBytes() / Page.size
    }

    var mode: WireDeviceKind { .kernel }
    var epcUsedPages: UInt64? { nil }
    func sampleReclaimActivity() -> Bool? { reclaimer.sample() }
    var statusCounters: [WireCounter] { [] }
    var statusNote: String? { nil }
    var helloDescriptor: (any SharedDeviceDescriptor)? { nil }
    var takeOver: (any DeviceTakeOver)? { nil }
    var storableDescriptor: Int32? { nil }

    func openEnclave(_ descriptor: consuming OwnedDescriptor) throws(WireError) -> any OpenedEnclave {
        switch access.open(descriptor) {
        case .success(let enclave): return enclave
        case .failure(let problem): throw WireError(.badDescriptor, "not an SGX enclave descriptor: \(problem)")
        }
    }

    func maintain(now: MonotonicInstant, logger: Logger) {}
}

/// An enclave on the kernel's SGX driver. Its identity is its open file: every open(2) of
/// /dev/sgx_enclave creates an enclave of its own, and dup(2) or SCM_RIGHTS only add descriptors
/// of that file (kcmp(2) compares them; st_ino cannot, the device has one inode).
final class KernelEnclave: OpenedEnclave {
    let kernelDevice: KernelEnclaveDevice

    init(_ device: KernelEnclaveDevice) {
        kernelDevice = device
    }

    var kind: WireDeviceKind { .kernel }
    var device: any EnclaveDevice { kernelDevice }
    var storableDescriptor: Int32 { kernelDevice.descriptor }
    var elrange: (base: UInt64, size: UInt64)? { nil }
    var epcm: (any EPCMInspector)? { nil }
    var statsCounters: [WireCounter] { [] }
    /// The kernel exposes no key for an open file, only kcmp(2)'s pairwise comparison.
    var identityKey: AnyHashable? { nil }

    func isSameEnclave(as other: any OpenedEnclave) throws(IdentityUnknown) -> Bool {
        guard let other = other as? KernelEnclave else { return false }
        do {
            return try kernelDevice.isSameEnclave(as: other.kernelDevice)
        } catch {
            throw IdentityUnknown(description: "\(error)")
        }
    }

    /// The descriptor closes with the last reference to the device.
    func close() {}
}

/// The EPC the kernel manages: the sum of `/sys/devices/system/node/node*/x86/sgx_total_bytes`
/// (Linux >= 6.0 exposes one figure per NUMA node). 0 when none can be read.
enum KernelEPCSize {
    static func totalBytes(nodesDirectory: String = "/sys/devices/system/node") -> UInt64 {
        var total: UInt64 = 0
        for name in directoryEntries(nodesDirectory) ?? [] {
            guard name.hasPrefix("node"), UInt32(name.dropFirst(4)) != nil,
                let text = readSmallFile("\(nodesDirectory)/\(name)/x86/sgx_total_bytes"),
                let bytes = UInt64(text.trimmingCharacters(in: " \n\t"))
            else { continue }
            total &+= bytes
        }
        return total
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: String) -> String {
        let drop: (Character) -> Bool = { set.contains($0) }
        return String(self.drop(while: drop).reversed().drop(while: drop).reversed())
    }
}
