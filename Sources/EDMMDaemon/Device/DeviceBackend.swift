import EDMMConfig
import EDMMCore
import EDMMProtocol
import EDMMSystem
import Glibc
import SGXKernel
import SGXSimulator

/// How kernel enclave descriptors are recognised and driven: the syscall funnel and the SGX
/// device node. Tests substitute both (a descriptor of `devicePath` is then taken for an enclave).
public struct KernelDeviceAccess: Sendable {
    public var syscalls: any Syscalls
    public var devicePath: String

    public init(syscalls: any Syscalls = LinuxSyscalls(), devicePath: String = SGXDeviceNode.defaultPath) {
        self.syscalls = syscalls
        self.devicePath = devicePath
    }
}

/// Where the daemon runs enclave ioctls, chosen once at start-up, and why.
struct DeviceBackend: Sendable {
    let mode: WireDeviceKind
    /// One line for the start-up log and every STATUS ("--simulate given", "no SGX2 here: ...").
    let reason: String
    /// The simulated EPC (simulated mode only); clients create their enclaves in it.
    let epc: SimulatedEPC?
    /// The EPC size in pages; 0 when unknown (kernel mode without the sysfs figures).
    let epcTotalPages: UInt64
    /// How a REGISTER's descriptor is tried as a kernel enclave (in either mode).
    var kernel = KernelDeviceAccess()

    /// Picks the device: `simulated` always simulates; `kernel` requires usable SGX2; `auto` uses the
    /// kernel device when SGX2 is usable and simulates otherwise.
    /// `storedMachine` is the simulated EPC the previous daemon left in the FD store: a simulated
    /// backend opens it instead of creating a new one (the stored enclaves live in it).
    static func choose(
        _ config: DaemonConfig, simulateFlag: Bool, hostSupport: () -> SGXHostSupport = { SGXHostSupport.check() },
        storedMachine: SimulatedMachine? = nil, kernel: KernelDeviceAccess = KernelDeviceAccess()
    ) throws(StartupError) -> DeviceBackend {
        var backend = try chooseDevice(config, simulateFlag: simulateFlag, hostSupport: hostSupport, storedMachine: storedMachine)
        backend.kernel = kernel
        return backend
    }

    private static func chooseDevice(
        _ config: DaemonConfig, simulateFlag: Bool, hostSupport: () -> SGXHostSupport, storedMachine: SimulatedMachine?
    ) throws(StartupError) -> DeviceBackend {
        switch config.daemon.device {
        case .simulated:
            return try simulated(
                config, reason: simulateFlag ? "--simulate given" : "device = \"simulated\" in the configuration", stored: storedMachine)
        case .kernel:
            let support = hostSupport()
            guard support.isUsable else { throw .noSGX2(support.reason) }
            return kernel(reason: "device = \"kernel\": \(support.reason)")
        case .auto:
            let support = hostSupport()
            if support.isUsable { return kernel(reason: "SGX2 is usable: \(support.reason)") }
            return try simulated(config, reason: "no usable SGX2 (\(support.reason)): using the simulated EPC", stored: storedMachine)
        }
    }

    private static func kernel(reason: String) -> DeviceBackend {
        DeviceBackend(mode: .kernel, reason: reason, epc: nil, epcTotalPages: KernelEPCSize.totalBytes() / Page.size)
    }

    /// A stored machine keeps the faults it was created with (they live in its region).
    private static func simulated(_ config: DaemonConfig, reason: String, stored: SimulatedMachine?) throws(StartupError) -> DeviceBackend {
        let machine: SimulatedMachine
        if let stored {
            machine = stored
        } else {
            do {
                machine = try SimulatedMachine.create(
                    .init(
                        epcPages: config.simulator.epcBytes / Page.size,
                        enclaveCapacity: UInt32(clamping: config.simulator.maxEnclaves), sgx2: true,
                        faults: SimulatorFaults(config.simulator.faults)))
            } catch {
                throw .simulator("cannot create the simulated EPC: \(error)")
            }
        }
        let faults = machine.faults
        let why = faults.isOff ? reason : "\(reason); injecting faults \(faults)"
        return DeviceBackend(mode: .simulated, reason: why, epc: SimulatedEPC(machine), epcTotalPages: machine.epcPages)
    }

    /// The simulated machine in use now (a restarted daemon may have taken over its predecessor's).
    var machine: SimulatedMachine? { epc?.machine }
}

extension SimulatorFaults {
    init(_ faults: DaemonConfig.Faults) {
        self.init(
            seed: faults.seed,
            rates: [
                .loadBusy: faults.loadBusy, .reclaimerHoldsPage: faults.reclaimerHoldsPage, .eaugFailure: faults.eaugFailure,
                .pageConflict: faults.pageConflict,
            ])
    }
}

/// The EPC the kernel manages: the sum of `/sys/devices/system/node/node*/x86/sgx_total_bytes`
/// (Linux >= 6.0 exposes one figure per NUMA node). 0 when none can be read.
enum KernelEPCSize {
    static func totalBytes(nodesDirectory: String = "/sys/devices/system/node") -> UInt64 {
        guard let dir = opendir(nodesDirectory) else { return 0 }
        defer { closedir(dir) }
        var total: UInt64 = 0
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard name.hasPrefix("node"), UInt32(name.dropFirst(4)) != nil,
                let text = readSmallFile("\(nodesDirectory)/\(name)/x86/sgx_total_bytes"),
                let bytes = UInt64(text.trimmingCharacters(in: " \n\t"))
            else { continue }
            total &+= bytes
        }
        return total
    }
}

/// Why the daemon cannot start.
public enum StartupError: Error, Equatable, CustomStringConvertible {
    case noSGX2(String)
    case simulator(String)
    case configuration(String)
    case socket(String)

    public var description: String {
        switch self {
        case .noSGX2(let reason): "device = \"kernel\" but SGX2 is not usable: \(reason)"
        case .simulator(let message): message
        case .configuration(let message): message
        case .socket(let message): message
        }
    }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        let drop: (Character) -> Bool = { set.contains($0) }
        return String(self.drop(while: drop).reversed().drop(while: drop).reversed())
    }
}
