/// What the simulator counts per enclave, in the enclave region (every process sees the same
/// numbers). The raw value is the slot in the region's counter array: append, never reorder.
public enum SimCounter: Int, CaseIterable, Sendable, CustomStringConvertible {
    // ENCLS leaves (run by the kernel).
    case ecreate, eadd, einit, eaug, emodpr, emodt, eremove, etrack, eldu
    // ENCLU leaves (run by the enclave) and enclave transitions.
    case eenter, eexit, eresume, aex, eaccept, eacceptcopy, emodpe
    /// Page faults the driver's fault handler ran for (EAUG, mapping, ELDU).
    case driverFaults
    /// #PF with the SGX bit (EPCM denied an access with a present PTE), delivered to the host.
    case sgxFaults
    /// Inter-processor interrupts: one per attached process per ETRACK.
    case ipis
    /// OCALLs (each is also one EEXIT and one EENTER).
    case ocalls
    // ioctls by kind, and those refused with EBUSY because another was in progress.
    case ioctlAddPages, ioctlInit, ioctlModifyTypes, ioctlRestrictPermissions, ioctlRemovePages, ioctlBusy
    // Enclave memory accesses through the simulated CPU.
    case reads, writes
    /// EWB of this enclave's pages. Kept in the machine region (eviction touches only it) and
    /// merged into snapshots.
    case ewb
    /// The part of `driverFaults` taken by accesses from outside the enclave (a host touching
    /// its mapping, or EENTER/ERESUME reaching the TCS): no AEX, the CPU was not in enclave mode.
    case hostFaults
    /// Faults inside the enclave that the driver resolved (EAUG, ELDU, mapping) and the CPU then
    /// retried: each is an AEX and an ERESUME that no host sees (the AEP resumes at once).
    case resolvedFaults

    public var description: String {
        switch self {
        case .driverFaults: "driver_faults"
        case .sgxFaults: "sgx_faults"
        case .ioctlAddPages: "ioctl_add_pages"
        case .ioctlInit: "ioctl_init"
        case .ioctlModifyTypes: "ioctl_modify_types"
        case .ioctlRestrictPermissions: "ioctl_restrict_permissions"
        case .ioctlRemovePages: "ioctl_remove_pages"
        case .ioctlBusy: "ioctl_ebusy"
        // Spelled out: interpolating `self` here would call this property again, forever.
        case .ecreate: "ecreate"
        case .eadd: "eadd"
        case .einit: "einit"
        case .eaug: "eaug"
        case .emodpr: "emodpr"
        case .emodt: "emodt"
        case .eremove: "eremove"
        case .etrack: "etrack"
        case .eldu: "eldu"
        case .eenter: "eenter"
        case .eexit: "eexit"
        case .eresume: "eresume"
        case .aex: "aex"
        case .eaccept: "eaccept"
        case .eacceptcopy: "eacceptcopy"
        case .emodpe: "emodpe"
        case .ipis: "ipis"
        case .ocalls: "ocalls"
        case .reads: "reads"
        case .writes: "writes"
        case .ewb: "ewb"
        case .hostFaults: "host_faults"
        case .resolvedFaults: "resolved_faults"
        }
    }
}

/// A snapshot of one enclave's counters.
public struct CounterSnapshot: Sendable, Equatable, CustomStringConvertible {
    public private(set) var values: [UInt64]

    public init(values: [UInt64] = []) {
        self.values = values + Array(repeating: 0, count: max(0, SimCounter.allCases.count - values.count))
    }

    public subscript(_ counter: SimCounter) -> UInt64 {
        get { values[counter.rawValue] }
        set { values[counter.rawValue] = newValue }
    }

    /// `self - earlier`, counter by counter (what happened between two snapshots).
    public func since(_ earlier: CounterSnapshot) -> CounterSnapshot {
        CounterSnapshot(values: zip(values, earlier.values).map { $0 &- $1 })
    }

    public var description: String {
        SimCounter.allCases.filter { self[$0] != 0 }.map { "\($0)=\(self[$0])" }.joined(separator: " ")
    }
}
