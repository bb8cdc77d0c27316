import CEDMMShims
import EDMMCore

/// Where each table of a machine region lives; a pure function of the configuration, so that
/// `open` can recompute it and reject any header that disagrees.
struct MachineLayout: Equatable {
    var headerSize: UInt64
    var slotsOffset: UInt64
    var referencedOffset: UInt64
    var enclavesOffset: UInt64
    var regionSize: UInt64

    static let maxEPCPages: UInt64 = 1 << 31
    static let maxEnclaves: UInt32 = 1 << 20

    init(headerSize: UInt64, slotsOffset: UInt64, referencedOffset: UInt64, enclavesOffset: UInt64, regionSize: UInt64) {
        self.headerSize = headerSize
        self.slotsOffset = slotsOffset
        self.referencedOffset = referencedOffset
        self.enclavesOffset = enclavesOffset
        self.regionSize = regionSize
    }

    init(epcPages: UInt64, enclaveCapacity: UInt32) {
        headerSize = UInt64(MemoryLayout<edmm_machine_header>.size)
        slotsOffset = roundUp(headerSize, to: Page.size)
        referencedOffset = roundUp(slotsOffset + epcPages * UInt64(MemoryLayout<edmm_epc_slot>.stride), to: Page.size)
        enclavesOffset = roundUp(referencedOffset + epcPages, to: Page.size)
        regionSize = roundUp(
            enclavesOffset + UInt64(enclaveCapacity) * UInt64(MemoryLayout<edmm_enclave_record>.stride), to: Page.size)
    }
}
