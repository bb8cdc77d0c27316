import CEDMMShims

/// SGX as CPUID enumerates it. A start-up signal only: the kernel's answer to the SGX2 probe is
/// authoritative (it may have disabled SGX2, and a hypervisor may mask leaves).
public struct CPUSGXFeatures: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// CPUID.(EAX=7,ECX=0):EBX[2].
    public static let sgx = CPUSGXFeatures(rawValue: UInt32(EDMM_CPU_SGX))
    /// Flexible launch control, CPUID.(EAX=7,ECX=0):ECX[30]; the in-kernel driver requires it.
    public static let launchControl = CPUSGXFeatures(rawValue: UInt32(EDMM_CPU_SGX_LC))
    /// CPUID.(EAX=0x12,ECX=0):EAX[0].
    public static let sgx1 = CPUSGXFeatures(rawValue: UInt32(EDMM_CPU_SGX1))
    /// CPUID.(EAX=0x12,ECX=0):EAX[1]: EAUG, EACCEPT, EMODPR, EMODT, EMODPE, EACCEPTCOPY.
    public static let sgx2 = CPUSGXFeatures(rawValue: UInt32(EDMM_CPU_SGX2))

    /// What the CPU running this process reports.
    public static var current: CPUSGXFeatures { CPUSGXFeatures(rawValue: edmm_cpuid_sgx_features()) }

    public var description: String {
        guard contains(.sgx) else { return "no SGX" }
        let names: [(CPUSGXFeatures, String)] = [(.sgx1, "SGX1"), (.sgx2, "SGX2"), (.launchControl, "FLC")]
        let present = names.filter { contains($0.0) }.map(\.1)
        return present.isEmpty ? "SGX without SGX1" : present.joined(separator: " ")
    }
}
