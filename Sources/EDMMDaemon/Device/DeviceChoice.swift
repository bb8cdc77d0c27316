import EDMMConfig
import EDMMSystem
import Logging
import SGXKernel

/// Picks the device once, at start-up: `simulated` always simulates; `kernel` requires usable
/// SGX2; `auto` uses the kernel device when SGX2 is usable and simulates otherwise.
enum DeviceChoice {
    /// `storedMachine` is the simulated EPC the previous daemon left in the FD store: a simulated
    /// backend opens it instead of creating a new one (the stored enclaves live in it).
    static func choose(
        _ config: DaemonConfig, simulateFlag: Bool, hostSupport: () -> SGXHostSupport, storedMachine: consuming OwnedDescriptor?,
        kernel: KernelDeviceAccess, logger: Logger
    ) throws(StartupError) -> any DeviceBackend {
        switch config.daemon.device {
        case .simulated:
            let reason = simulateFlag ? "--simulate given" : "device = \"simulated\" in the configuration"
            return try SimulatedBackend(config, reason: reason, stored: storedMachine, kernel: kernel, logger: logger)
        case .kernel:
            let support = hostSupport()
            guard support.isUsable else { throw .noSGX2(support.reason) }
            return KernelBackend(reason: "device = \"kernel\": \(support.reason)", access: kernel)
        case .auto:
            let support = hostSupport()
            if support.isUsable { return KernelBackend(reason: "SGX2 is usable: \(support.reason)", access: kernel) }
            return try SimulatedBackend(
                config, reason: "no usable SGX2 (\(support.reason)): using the simulated EPC", stored: storedMachine, kernel: kernel,
                logger: logger)
        }
    }
}
