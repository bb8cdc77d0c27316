import CEDMMShims
import EDMMCore
import Glibc

/// The shared part of one simulated enclave: its header, sparse page table and (optionally)
/// page contents, mapped from the enclave memfd.
///
/// The page table and header fields below the lock are guarded by the region's robust mutex
/// (the kernel's `encl->lock`); `flags` and the counters are atomics; `ioctl_busy` is the
/// kernel's SGX_ENCL_IOCTL bit.
final class EnclaveRegion: @unchecked Sendable {
    let descriptor: SharedDescriptor
    let metadata: MappedRegion
    let contents: MappedRegion?
    let layout: EnclaveLayout
    let header: UnsafeMutablePointer<edmm_enclave_header>
    let directory: UnsafeMutablePointer<UInt32>
    let pool: UnsafeMutablePointer<edmm_page_entry>
    let blockOwners: UnsafeMutablePointer<UInt32>
    let base: UInt64
    let size: UInt64
    let pageCount: UInt64

    /// `base` and `size` are the validated ELRANGE (never re-read here: another process may
    /// rewrite the header at any time, and `pageCount` bounds every page-table access).
    init(descriptor: SharedDescriptor, layout: EnclaveLayout, base: UInt64, size: UInt64, mapContents: Bool) throws(SimulatorError) {
        self.descriptor = descriptor
        self.layout = layout
        metadata = try MappedRegion(fd: descriptor.fd, offset: 0, length: layout.metadataSize)
        contents =
            mapContents && layout.regionSize > layout.dataOffset
            ? try MappedRegion(
                fd: descriptor.fd, offset: layout.dataOffset, length: layout.regionSize - layout.dataOffset)
            : nil
        header = metadata.pointer(at: 0, as: edmm_enclave_header.self)
        directory = metadata.pointer(at: layout.directoryOffset, as: UInt32.self)
        pool = metadata.pointer(at: layout.poolOffset, as: edmm_page_entry.self)
        blockOwners = metadata.pointer(at: layout.blockOwnerOffset, as: UInt32.self)
        self.base = base
        self.size = size
        pageCount = size >> Page.shift
    }

    // MARK: Lock

    /// Runs `body` under `encl->lock`. A holder that died mid-ioctl left every page entry either
    /// before or after one instruction (each EPCM update is one 64-bit store); at worst a counter
    /// or `present_pages` is off by one, which `present_pages` recomputation would repair but no
    /// decision depends on.
    @inline(__always)
    func withLock<T>(_ body: () throws(SimulatorError) -> T) throws(SimulatorError) -> T {
        let rc = edmm_mutex_lock(&header.pointee.lock)
        guard rc >= 0 else { throw .system(call: "pthread_mutex_lock", errno: -rc) }
        defer { edmm_mutex_unlock(&header.pointee.lock) }
        if rc == 1 { header.pointee.lock_recoveries &+= 1 }
        return try body()
    }

    // MARK: Flags and counters

    var flags: UInt32 { edmm_load32(&header.pointee.flags) }
    var isInitialized: Bool { flags & EDMM_ENCL_INITIALIZED != 0 }

    func setFlag(_ flag: UInt32) { edmm_store32(&header.pointee.flags, flags | flag) }

    /// SGX_ENCL_IOCTL: true when this caller got the bit (no other ioctl in progress).
    func tryBeginIoctl() -> Bool { edmm_test_and_set32(&header.pointee.ioctl_busy) == 0 }
    func endIoctl() { edmm_store32(&header.pointee.ioctl_busy, 0) }

    @inline(__always) func count(_ counter: SimCounter, _ n: UInt64 = 1) {
        withUnsafeMutablePointer(to: &header.pointee.counters) {
            $0.withMemoryRebound(to: UInt64.self, capacity: Int(EDMM_COUNTER_SLOTS)) {
                edmm_add64($0 + counter.rawValue, n)
            }
        }
    }

    func counters() -> [UInt64] {
        withUnsafeMutablePointer(to: &header.pointee.counters) {
            $0.withMemoryRebound(to: UInt64.self, capacity: Int(EDMM_COUNTER_SLOTS)) { p in
                SimCounter.allCases.map { edmm_load64(p + $0.rawValue) }
            }
        }
    }

    // MARK: Page table (callers hold the lock, except `peek`)

    /// The entry of `page` (index relative to base), creating its leaf block if `create`.
    /// Returns nil for a page outside ELRANGE, or a never-created leaf when `create` is false.
    /// Directory values are bounds-checked: the region is writable by other processes.
    @inline(__always)
    func entry(_ page: UInt64, create: Bool) -> UnsafeMutablePointer<edmm_page_entry>? {
        guard page < pageCount else { return nil }
        let slot = directory + Int(page >> UInt64(EDMM_LEAF_SHIFT))
        var block = slot.pointee
        if block == 0 {
            guard create, header.pointee.pool_used < layout.poolBlocks else { return nil }
            header.pointee.pool_used += 1
            block = UInt32(header.pointee.pool_used)
            blockOwners[Int(block - 1)] = UInt32(page >> UInt64(EDMM_LEAF_SHIFT))
            slot.pointee = block
        }
        guard UInt64(block) <= layout.poolBlocks else { return nil }
        return pool + (Int(block - 1) << Int(EDMM_LEAF_SHIFT)) + Int(page & UInt64(EDMM_LEAF_ENTRIES - 1))
    }

    @inline(__always) func word(_ e: UnsafeMutablePointer<edmm_page_entry>) -> PageWord {
        PageWord(edmm_load64(&e.pointee.w.word))
    }

    @inline(__always) func store(_ w: PageWord, _ e: UnsafeMutablePointer<edmm_page_entry>) {
        edmm_store64(&e.pointee.w.word, w.word)
    }

    /// The page's state without creating anything (holes read as zero words).
    func peek(_ page: UInt64) -> PageWord {
        guard let e = entry(page, create: false) else { return PageWord(0) }
        return word(e)
    }

    /// Calls `body` for every page whose leaf block exists in `[first, end)`: through the
    /// directory for a short range, through the used blocks for a long one (reading a directory
    /// page of the sparse memfd would allocate it).
    func forEachAllocatedEntry(
        from first: UInt64, to end: UInt64, _ body: (UInt64, UnsafeMutablePointer<edmm_page_entry>) -> Void
    ) {
        let last = min(end, pageCount)
        guard first < last else { return }
        let shift = UInt64(EDMM_LEAF_SHIFT)
        let firstLeaf = first >> shift
        let endLeaf = (last - 1) >> shift + 1
        let used = min(header.pointee.pool_used, layout.poolBlocks)
        func visit(leaf: UInt64, block: UInt32) {
            guard block >= 1, UInt64(block) <= used else { return }
            let leafBase = pool + (Int(block - 1) << Int(shift))
            let lo = max(first, leaf << shift)
            let hi = min(last, (leaf + 1) << shift)
            var page = lo
            while page < hi {
                body(page, leafBase + Int(page & UInt64(EDMM_LEAF_ENTRIES - 1)))
                page += 1
            }
        }
        if endLeaf - firstLeaf <= used {
            for leaf in firstLeaf..<endLeaf { visit(leaf: leaf, block: directory[Int(leaf)]) }
        } else {
            var owned: [(leaf: UInt64, block: UInt32)] = []
            for b in 0..<Int(used) {
                let leaf = UInt64(blockOwners[b])
                if leaf >= firstLeaf, leaf < endLeaf, directory[Int(leaf)] == UInt32(b + 1) {
                    owned.append((leaf, UInt32(b + 1)))
                }
            }
            for (leaf, block) in owned.sorted(by: { $0.leaf < $1.leaf }) { visit(leaf: leaf, block: block) }
        }
    }

    // MARK: Contents

    @inline(__always) func contentPointer(_ page: UInt64) -> UnsafeMutableRawPointer? {
        guard let contents, page < pageCount else { return nil }
        return contents.base + Int(page << Page.shift)
    }

    /// Gives removed pages' contents back to the kernel; they read as zeros from now on (what
    /// EAUG relies on: a hole's contents are zero).
    func discardContents(from first: UInt64, to end: UInt64) {
        let offset = layout.dataOffset + (first << Page.shift)
        if edmm_punch_hole(descriptor.fd, offset, (end - first) << Page.shift) != 0, let p = contentPointer(first) {
            memset(p, 0, Int((end - first) << Page.shift))
        }
    }
}
