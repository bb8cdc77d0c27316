import CEDMMShims
import EDMMCore

/// Where the page table and page contents of an enclave region live; a pure function of the
/// ELRANGE size, so that `open` can recompute it and reject any header that disagrees.
///
/// The page table is sparse and two-level: a directory indexed by `page >> 9` names 512-entry
/// leaf blocks handed out from a bump pool (with a reverse index, so walks over a huge range
/// visit only the blocks in use instead of reading the whole directory). The memfd is sparse, so untouched directory pages,
/// leaf blocks and page contents cost nothing: a 1 TiB ELRANGE with a few pages is a few KiB.
struct EnclaveLayout: Equatable {
    var headerSize: UInt64
    var directoryOffset: UInt64
    var directoryEntries: UInt64
    var poolOffset: UInt64
    var poolBlocks: UInt64
    var blockOwnerOffset: UInt64
    var metadataSize: UInt64
    var dataOffset: UInt64
    var regionSize: UInt64

    /// The largest ELRANGE the simulator accepts (16 TiB; CPUs report 2^36 to 2^47).
    static let maxSize: UInt64 = 1 << 44
    static let leafBytes = UInt64(EDMM_LEAF_ENTRIES) * UInt64(MemoryLayout<edmm_page_entry>.stride)

    init(size: UInt64) {
        let pages = size >> Page.shift
        headerSize = UInt64(MemoryLayout<edmm_enclave_header>.size)
        directoryOffset = roundUp(headerSize, to: Page.size)
        directoryEntries = (pages + UInt64(EDMM_LEAF_ENTRIES) - 1) >> UInt64(EDMM_LEAF_SHIFT)
        poolOffset = roundUp(directoryOffset + directoryEntries * 4, to: Page.size)
        poolBlocks = directoryEntries
        blockOwnerOffset = poolOffset + poolBlocks * Self.leafBytes
        metadataSize = roundUp(blockOwnerOffset + poolBlocks * 4, to: Page.size)
        dataOffset = metadataSize
        regionSize = dataOffset + pages * Page.size
    }

    init(header h: UnsafePointer<edmm_enclave_header>) {
        headerSize = UInt64(h.pointee.header_size)
        directoryOffset = h.pointee.directory_offset
        directoryEntries = h.pointee.directory_entries
        poolOffset = h.pointee.pool_offset
        poolBlocks = h.pointee.pool_blocks
        blockOwnerOffset = h.pointee.block_owner_offset
        metadataSize = h.pointee.metadata_size
        dataOffset = h.pointee.data_offset
        regionSize = h.pointee.region_size
    }

    /// ECREATE's rules for SECS.SIZE and SECS.BASEADDR: the driver refuses a size that is not a
    /// power of two (EINVAL); the instruction raises #GP for one under two pages (SDM ECREATE:
    /// "SECS.SIZE < 2 * 4096"), which the driver reports as EIO.
    static func validateELRANGE(base: UInt64, size: UInt64) -> String? {
        if size == 0 || size & (size - 1) != 0 { return "ELRANGE size \(size) is not a power of two (EINVAL)" }
        if size < 2 * Page.size { return "ELRANGE size \(size) is under two pages: ECREATE #GP (EIO)" }
        if size > maxSize { return "ELRANGE size \(size) exceeds the simulator's maximum of \(maxSize)" }
        if base & (size - 1) != 0 { return "base 0x\(String(base, radix: 16)) is not aligned to the size" }
        if base > UInt64.max - size { return "ELRANGE wraps around the address space" }
        return nil
    }
}
