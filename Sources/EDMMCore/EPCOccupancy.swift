/// The EPC's use as far as the device can tell it: the one input of machine-wide pressure, the
/// same in every mode.
///
/// Linux 6.x publishes the EPC's size (`sgx_total_bytes` per node) and nothing of its use: no
/// used or free figure, no per-enclave accounting, no vmstat line or tracepoint. What it does show
/// is its reclaimer at work: ksgxd runs only while fewer than `SGX_NR_HIGH_PAGES` (64) EPC pages
/// are free (`arch/x86/kernel/cpu/sgx/main.c`, `ksgxd()` and `sgx_should_reclaim()`). So on
/// hardware the count is a lower bound (edmmd's ledgers plus one SECS per enclave; enclave images,
/// VA pages, unregistered enclaves and KVM guests are invisible) and the reclaimer's activity is
/// the signal that the EPC is full. The simulator counts every page and evicts synchronously.
public struct EPCOccupancy: Hashable, Sendable {
    /// Where `usedPages` comes from.
    public enum Measure: String, Hashable, Sendable {
        /// The device counted every page in use (the simulated EPC: SECS, VA pages, images and
        /// enclaves edmmd does not manage included).
        case device
        /// edmmd's ledgers and one SECS page per registered enclave: a lower bound.
        case ledgers
    }

    /// The EPC's size; 0 when unknown.
    public var totalPages: UInt64
    public var usedPages: UInt64
    public var measure: Measure
    /// The device evicted EPC pages since the previous sample (ksgxd ran; the simulator wrote
    /// pages back with EWB).
    public var deviceReclaiming: Bool

    public init(totalPages: UInt64, usedPages: UInt64, measure: Measure, deviceReclaiming: Bool) {
        self.totalPages = totalPages
        self.usedPages = usedPages
        self.measure = measure
        self.deviceReclaiming = deviceReclaiming
    }

    /// The use pressure is judged by: while the device reclaims, its EPC is full, whatever a
    /// lower-bound count says.
    public var effectiveUsedPages: UInt64 {
        deviceReclaiming ? Swift.max(usedPages, totalPages) : usedPages
    }
}
