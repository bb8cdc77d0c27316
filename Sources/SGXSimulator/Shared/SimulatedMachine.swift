import CEDMMShims
import Glibc

/// The machine's EPC, shared by every process of a simulated host: the EPC page table (which
/// enclave page occupies each EPC page), the eviction clock, global counters and the enclave
/// table. Create it once (the daemon does) and hand its `fd` to the other processes, which `open`
/// it.
///
/// Every mutation happens under the region's robust mutex (`lock`); the lock-free readers are
/// the residency test (one 64-bit load of a slot tag), the reference bits of the clock and the
/// figures (`stats`, `residency`).
///
/// Every process of the host can write the region, so nothing read from it is trusted: counts are
/// clamped where they are read, and counters wrap instead of trapping when a writer set them near
/// 2^64.
public final class SimulatedMachine: @unchecked Sendable {
    public struct Configuration: Sendable, Equatable {
        /// EPC capacity in 4 KiB pages (default 128 MiB, a common client-part EPC size).
        public var epcPages: UInt64
        /// Enclaves the machine can hold at once.
        public var enclaveCapacity: UInt32
        /// False models an SGX1-only CPU: SGX2 ioctls fail with ENODEV and there is no EAUG.
        public var sgx2: Bool
        /// Transient failures to inject (none by default); `setFaults` changes them later.
        public var faults: SimulatorFaults

        public init(epcPages: UInt64 = 32768, enclaveCapacity: UInt32 = 4096, sgx2: Bool = true, faults: SimulatorFaults = .off) {
            self.epcPages = epcPages
            self.enclaveCapacity = enclaveCapacity
            self.sgx2 = sgx2
            self.faults = faults
        }
    }

    /// A consistent snapshot of the machine's counters.
    public struct Stats: Sendable, Equatable {
        public var epcPages: UInt64
        /// EPC pages in use, whatever they hold: enclave pages (REG, TCS, TRIM), SECS pages and
        /// Version Array pages, as the kernel's EPC allocator counts them.
        public var usedPages: UInt64
        /// The SECS pages among them (each enclave's, except after EINIT once all its pages
        /// were evicted).
        public var secsPages: UInt64
        /// The VA pages among them (one per 512 pages an enclave has grown by; never evicted).
        public var vaPages: UInt64
        public var ewb: UInt64
        public var eldu: UInt64
        public var aliveEnclaves: Int
        public var sweeps: UInt64
        public var lockRecoveries: UInt64
    }

    let descriptor: SharedDescriptor
    let region: MappedRegion
    let header: UnsafeMutablePointer<edmm_machine_header>
    let slots: UnsafeMutablePointer<edmm_epc_slot>
    let referenced: UnsafeMutablePointer<UInt8>
    let records: UnsafeMutablePointer<edmm_enclave_record>
    /// The fault-injection table in the header (atomics, read and written without the lock).
    let faultTable: UnsafeMutablePointer<edmm_fault_injection>
    public let epcPages: UInt64
    public let enclaveCapacity: UInt32
    public let supportsSGX2: Bool
    let uuid: (hi: UInt64, lo: UInt64)

    /// The machine's memfd; pass it to other processes (they `open(fd:)` it).
    public var fd: Int32 { descriptor.fd }

    public var uuidString: String {
        let hex = String(uuid.hi, radix: 16).leftPadded(16) + String(uuid.lo, radix: 16).leftPadded(16)
        let c = Array(hex)
        return [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { String(c[$0]) }.joined(separator: "-")
    }

    private init(descriptor: SharedDescriptor, region: MappedRegion, layout: MachineLayout) {
        self.descriptor = descriptor
        self.region = region
        header = region.pointer(at: 0, as: edmm_machine_header.self)
        slots = region.pointer(at: layout.slotsOffset, as: edmm_epc_slot.self)
        referenced = region.pointer(at: layout.referencedOffset, as: UInt8.self)
        records = region.pointer(at: layout.enclavesOffset, as: edmm_enclave_record.self)
        faultTable = region.pointer(
            at: UInt64(MemoryLayout<edmm_machine_header>.offset(of: \edmm_machine_header.faults)!), as: edmm_fault_injection.self)
        epcPages = header.pointee.epc_pages
        enclaveCapacity = header.pointee.enclave_capacity
        supportsSGX2 = header.pointee.features & EDMM_FEATURE_SGX2 != 0
        uuid = (header.pointee.uuid_hi, header.pointee.uuid_lo)
    }

    /// A new machine in a new memfd.
    public static func create(_ configuration: Configuration = .init()) throws(SimulatorError) -> SimulatedMachine {
        guard configuration.epcPages >= 1, configuration.epcPages <= MachineLayout.maxEPCPages else {
            throw .invalidConfiguration("EPC size must be 1...\(MachineLayout.maxEPCPages) pages")
        }
        guard configuration.enclaveCapacity >= 1, configuration.enclaveCapacity <= MachineLayout.maxEnclaves else {
            throw .invalidConfiguration("enclave capacity must be 1...\(MachineLayout.maxEnclaves)")
        }
        let layout = MachineLayout(epcPages: configuration.epcPages, enclaveCapacity: configuration.enclaveCapacity)
        let fd = try SharedDescriptor.memfd(name: "edmm-sim-machine", size: layout.regionSize)
        let region = try MappedRegion(fd: fd.fd, offset: 0, length: layout.regionSize)
        let h = region.pointer(at: 0, as: edmm_machine_header.self)
        var id = (UInt64(0), UInt64(0))
        let rc = withUnsafeMutableBytes(of: &id) { edmm_random($0.baseAddress, 16) }
        guard rc == 0 else { throw .system(call: "getrandom", errno: -rc) }
        h.pointee.version = EDMM_SHM_VERSION
        h.pointee.header_size = UInt32(layout.headerSize)
        h.pointee.region_size = layout.regionSize
        h.pointee.slots_offset = layout.slotsOffset
        h.pointee.referenced_offset = layout.referencedOffset
        h.pointee.enclaves_offset = layout.enclavesOffset
        h.pointee.epc_pages = configuration.epcPages
        h.pointee.enclave_capacity = configuration.enclaveCapacity
        h.pointee.features = configuration.sgx2 ? EDMM_FEATURE_SGX2 : 0
        h.pointee.uuid_hi = id.0
        h.pointee.uuid_lo = id.1
        let mrc = edmm_mutex_init(&h.pointee.lock)
        guard mrc == 0 else { throw .system(call: "pthread_mutex_init", errno: mrc) }
        edmm_store64(&h.pointee.magic, EDMM_MACHINE_MAGIC)  // last: the region is valid from here
        let machine = SimulatedMachine(descriptor: fd, region: region, layout: layout)
        machine.setFaults(configuration.faults)
        return machine
    }

    /// Opens a machine another process created, validating its header before trusting it. The
    /// caller's `fd` is duplicated, not taken.
    public static func open(fd: Int32) throws(SimulatorError) -> SimulatedMachine {
        let prefix = try RegionProbe.read(fd: fd, expected: .machine, headerSize: MemoryLayout<edmm_machine_header>.size)
        let owned = try SharedDescriptor.duplicate(fd)
        let region = try MappedRegion(fd: owned.fd, offset: 0, length: prefix.regionSize)
        let h = region.pointer(at: 0, as: edmm_machine_header.self)
        let epc = h.pointee.epc_pages
        let capacity = h.pointee.enclave_capacity
        guard epc >= 1, epc <= MachineLayout.maxEPCPages, capacity >= 1, capacity <= MachineLayout.maxEnclaves else {
            throw .corruptHeader("EPC of \(epc) pages or \(capacity) enclaves is out of range")
        }
        let layout = MachineLayout(epcPages: epc, enclaveCapacity: capacity)
        let found = MachineLayout(
            headerSize: UInt64(prefix.headerSize), slotsOffset: h.pointee.slots_offset,
            referencedOffset: h.pointee.referenced_offset, enclavesOffset: h.pointee.enclaves_offset,
            regionSize: h.pointee.region_size)
        guard found == layout else { throw .corruptHeader("table offsets do not match an EPC of \(epc) pages") }
        return SimulatedMachine(descriptor: owned, region: region, layout: layout)
    }

    // MARK: Locking

    /// Runs `body` under the machine lock. If the previous holder died mid-update, the derived
    /// bookkeeping (free list, used and resident counts) is rebuilt from the slot table first;
    /// the slot tags themselves are written with single stores and are always consistent.
    func withLock<T>(_ body: () throws(SimulatorError) -> T) throws(SimulatorError) -> T {
        let rc = edmm_mutex_lock(&header.pointee.lock)
        guard rc >= 0 else { throw .system(call: "pthread_mutex_lock", errno: -rc) }
        defer { edmm_mutex_unlock(&header.pointee.lock) }
        if rc == 1 { repairAfterOwnerDeath() }
        return try body()
    }

    /// `withLock` for bodies that cannot fail; a lock error (only possible on a corrupted mutex)
    /// is then reported as nil.
    func locked<T>(_ body: () -> T) -> T? {
        try? withLock { () throws(SimulatorError) -> T in body() }
    }

    /// `withLock` that never waits: nil when another thread or process holds the lock now.
    func withLockIfFree<T>(_ body: () -> T) -> T? {
        let rc = edmm_mutex_trylock(&header.pointee.lock)
        guard rc >= 0 else { return nil }
        defer { edmm_mutex_unlock(&header.pointee.lock) }
        if rc == 1 { repairAfterOwnerDeath() }
        return body()
    }

    /// The thread that holds the machine lock now (0: none), for diagnostics.
    public var lockHolder: Int32 { edmm_mutex_holder(&header.pointee.lock) }

    private func repairAfterOwnerDeath() {
        header.pointee.lock_recoveries &+= 1
        let capacity = Int(enclaveCapacity)
        for i in 0..<capacity {
            records[i].resident_pages = 0
            records[i].va_pages = 0
            records[i].secs_slot = 0
        }
        var used: UInt64 = 0
        var freeHead: UInt64 = 0
        let highWater = min(header.pointee.high_water, epcPages)
        header.pointee.high_water = highWater
        for i in stride(from: Int(highWater) - 1, through: 0, by: -1) {
            let owner = slotOwner(slots[i].tag)
            if owner == 0 || owner > capacity {
                slots[i].tag = slots[i].tag & ~0xFFFF_FFFF
                slots[i].page = freeHead
                freeHead = UInt64(i) + 1
            } else {
                used += 1
                tally(i, owner: owner - 1)
            }
        }
        header.pointee.used_pages = used
        header.pointee.free_head = freeHead
    }

    // MARK: EPC slots (callers hold the machine lock unless noted)

    @inline(__always) func slotOwner(_ tag: UInt64) -> Int { Int(tag & 0xFFFF_FFFF) }

    /// What an occupied EPC slot holds.
    enum SlotContent { case enclavePage, secs, va }

    @inline(__always) func content(ofOccupied index: Int) -> SlotContent {
        switch slots[index].page {
        case EDMM_SLOT_SECS: .secs
        case EDMM_SLOT_VA: .va
        default: .enclavePage
        }
    }

    /// Counts the occupied slot `index` in its owner's record (enclave index `owner`).
    private func tally(_ index: Int, owner: Int) {
        let r = records + owner
        switch content(ofOccupied: index) {
        case .enclavePage: r.pointee.resident_pages &+= 1
        case .va: r.pointee.va_pages &+= 1
        case .secs:
            r.pointee.secs_slot = UInt32(index + 1)
            r.pointee.secs_gen = UInt32(truncatingIfNeeded: slots[index].tag >> 32)
        }
    }

    /// Lock-free: whether EPC slot `slot` (1-based) still holds generation `gen` of `owner`'s page.
    @inline(__always) func isResident(slot: UInt32, gen: UInt32, owner: UInt32) -> Bool {
        guard slot != 0, UInt64(slot) <= epcPages else { return false }
        return edmm_load64(&slots[Int(slot) - 1].tag) == (UInt64(gen) << 32 | UInt64(owner) + 1)
    }

    /// Lock-free: tells the clock the page was used.
    @inline(__always) func touch(slot: UInt32) {
        guard slot != 0, UInt64(slot) <= epcPages else { return }
        edmm_store8(referenced + Int(slot) - 1, 1)
    }

    /// Puts enclave page `page` of enclave `owner` in the EPC, as EADD and EAUG (`grows`: the
    /// enclave gains a page) or ELDU do: the SECS is loaded back first if it was evicted with the
    /// enclave's last page (`sgx_encl_load_secs()`), and a growing enclave takes a new VA page
    /// whenever its page count is a multiple of 512 (`sgx_encl_grow()`). Returns nil, with nothing
    /// allocated for the page, when nothing in the EPC can be evicted to make room (the kernel's
    /// -ENOMEM); otherwise whether the SECS had to be loaded back (one more ELDU).
    ///
    /// `point` records the 1-based slot and its new generation in the enclave's page entry
    /// before the slot is tagged: a process killed in between leaves an entry pointing at an
    /// untagged slot (not resident, and the machine lock's repair frees the slot), never a tagged
    /// slot no entry points at (a second EPC page for the same enclave page, forever).
    func placePage(owner: UInt32, page: UInt64, grows: Bool, point: (_ slot: UInt32, _ gen: UInt32) -> Void) -> Bool? {
        var secsLoaded = false
        if !secsIsResident(owner) {
            guard takeSlot(owner: owner, page: EDMM_SLOT_SECS, point: { _, _ in }) != nil else { return nil }
            header.pointee.eldu &+= 1
            secsLoaded = true
        }
        guard let index = takeSlot(owner: owner, page: page, point: point) else { return nil }
        if grows && !grow(owner) {
            releaseSlot(index)
            return nil
        }
        if !grows { header.pointee.eldu &+= 1 }
        return secsLoaded
    }

    /// ECREATE's EPC pages: a VA page (`sgx_encl_grow()` counts the SECS as the enclave's first
    /// page) and the SECS. False when the EPC has no room for them.
    func placeControlPages(owner: UInt32) -> Bool {
        grow(owner) && takeSlot(owner: owner, page: EDMM_SLOT_SECS, point: { _, _ in }) != nil
    }

    /// `sgx_encl_grow()`: the enclave counts one more page, and takes a new VA page first when its
    /// count is a multiple of the 512 slots of one.
    private func grow(_ owner: UInt32) -> Bool {
        let r = record(owner)
        if r.pointee.page_cnt % UInt64(EDMM_VA_SLOT_COUNT) == 0 {
            guard takeSlot(owner: owner, page: EDMM_SLOT_VA, point: { _, _ in }) != nil else { return false }
        }
        r.pointee.page_cnt &+= 1
        return true
    }

    /// EREMOVE of an enclave page (REMOVE_PAGES): its EPC page is freed if resident, and the
    /// count drops (`sgx_encl_shrink(encl, NULL)`); the VA pages stay until the enclave is released.
    func removePage(slot: UInt32, gen: UInt32, owner: UInt32) {
        if isResident(slot: slot, gen: gen, owner: owner) { releaseSlot(Int(slot) - 1) }
        let r = record(owner)
        if r.pointee.page_cnt > 0 { r.pointee.page_cnt -= 1 }
    }

    /// EINIT ran: from now on the reclaimer may write the SECS back with the enclave's last page.
    func markInitialized(owner: UInt32) {
        record(owner).pointee.flags |= EDMM_RECORD_INITIALIZED
    }

    private func secsIsResident(_ owner: UInt32) -> Bool {
        let r = record(owner)
        return isResident(slot: r.pointee.secs_slot, gen: r.pointee.secs_gen, owner: owner)
    }

    /// Gives `owner` an EPC page for `page` (an enclave page index, EDMM_SLOT_SECS or
    /// EDMM_SLOT_VA): a free one, or one the clock evicts (EWB). nil when every page of the EPC
    /// is one the reclaimer cannot take (a VA page, or a SECS whose enclave has pages in the EPC).
    private func takeSlot(owner: UInt32, page: UInt64, point: (_ slot: UInt32, _ gen: UInt32) -> Void) -> Int? {
        let index: Int
        if let free = popFreeSlot() {
            index = free
            header.pointee.used_pages &+= 1
        } else if sweepIfDue(), let free = popFreeSlot() {
            index = free
            header.pointee.used_pages &+= 1
        } else if let victim = evictOne(sparing: owner) {
            index = victim
        } else {
            return nil
        }
        let gen = UInt32(truncatingIfNeeded: slots[index].tag >> 32) &+ 1
        slots[index].page = page
        point(UInt32(index + 1), gen)
        edmm_store64(&slots[index].tag, UInt64(gen) << 32 | UInt64(owner) + 1)
        edmm_store8(referenced + index, 1)
        tally(index, owner: Int(owner))
        return index
    }

    private func releaseSlot(_ index: Int) {
        let owner = slotOwner(slots[index].tag)
        if owner >= 1, owner <= Int(enclaveCapacity) {
            let r = records + (owner - 1)
            switch content(ofOccupied: index) {
            case .enclavePage: if r.pointee.resident_pages > 0 { r.pointee.resident_pages -= 1 }
            case .va: if r.pointee.va_pages > 0 { r.pointee.va_pages -= 1 }
            case .secs: if r.pointee.secs_slot == UInt32(index + 1) { r.pointee.secs_slot = 0 }
            }
        }
        edmm_store64(&slots[index].tag, slots[index].tag & ~0xFFFF_FFFF)
        slots[index].page = header.pointee.free_head
        header.pointee.free_head = UInt64(index) + 1
        if header.pointee.used_pages > 0 { header.pointee.used_pages -= 1 }
    }

    private func popFreeSlot() -> Int? {
        let head = header.pointee.free_head
        if head != 0, head <= epcPages {
            let index = Int(head - 1)
            let next = slots[index].page
            header.pointee.free_head = next <= epcPages ? next : 0
            return index
        }
        header.pointee.free_head = 0
        if header.pointee.high_water < epcPages {
            header.pointee.high_water += 1
            return Int(header.pointee.high_water - 1)
        }
        return nil
    }

    /// The reclaimer may take an enclave page; VA pages never, a SECS only with its last page.
    @inline(__always) private func isEvictable(_ index: Int) -> Bool {
        slotOwner(slots[index].tag) != 0 && slots[index].page < EDMM_SLOT_VA
    }

    /// The clock: the first enclave page whose reference bit is clear (clearing bits on the way)
    /// is written back (EWB); if other processes keep setting the bits, the first enclave page
    /// after two revolutions. When that was the last page in the EPC of an initialized enclave
    /// other than `sparing` (the one loading a page), its SECS is written back and freed too
    /// (`sgx_reclaimer_write()`). Only the machine region changes: the page's EPCM state stays in
    /// its enclave region, so any process can evict any enclave's page. nil when the EPC holds
    /// no enclave page at all.
    private func evictOne(sparing: UInt32) -> Int? {
        let n = Int(epcPages)
        var index = Int(header.pointee.clock_hand % epcPages)
        var found = false
        for _ in 0..<(2 * n + 1) {
            if isEvictable(index) {
                if edmm_load8(referenced + index) == 0 {
                    found = true
                    break
                }
                edmm_store8(referenced + index, 0)
            }
            index = (index + 1) % n
        }
        if !found {
            for _ in 0..<n where !found {
                if isEvictable(index) { found = true } else { index = (index + 1) % n }
            }
            guard found else { return nil }
        }
        header.pointee.clock_hand = UInt64((index + 1) % n)
        header.pointee.ewb &+= 1
        let owner = slotOwner(slots[index].tag)
        guard owner >= 1, owner <= Int(enclaveCapacity) else { return index }
        let r = records + (owner - 1)
        if r.pointee.resident_pages > 0 { r.pointee.resident_pages -= 1 }
        r.pointee.ewb &+= 1
        let enclave = UInt32(owner - 1)
        if r.pointee.resident_pages == 0, r.pointee.flags & EDMM_RECORD_INITIALIZED != 0, enclave != sparing,
            secsIsResident(enclave)
        {
            header.pointee.ewb &+= 1
            r.pointee.ewb &+= 1
            releaseSlot(Int(r.pointee.secs_slot) - 1)
        }
        return index
    }

    // MARK: Enclave table

    func record(_ index: UInt32) -> UnsafeMutablePointer<edmm_enclave_record> { records + Int(index) }

    static let attachedOffset = MemoryLayout<edmm_enclave_record>.offset(of: \edmm_enclave_record.attached)!

    func attachments(_ index: UInt32) -> UnsafeMutableBufferPointer<edmm_attachment> {
        let base = (UnsafeMutableRawPointer(record(index)) + Self.attachedOffset)
            .assumingMemoryBound(to: edmm_attachment.self)
        return UnsafeMutableBufferPointer(start: base, count: Int(EDMM_MAX_ATTACHED))
    }

    /// Takes a free (or released) entry of the enclave table for a new enclave, attached to this
    /// process. Returns its index and incarnation.
    func registerEnclave() throws(SimulatorError) -> (index: UInt32, incarnation: UInt32) {
        try withLock { () throws(SimulatorError) -> (index: UInt32, incarnation: UInt32) in
            if let entry = claimEntry() { return entry }
            _ = sweepDeadEnclavesLocked()
            if let entry = claimEntry() { return entry }
            throw .machineFull(enclaveCapacity: enclaveCapacity)
        }
    }

    private func claimEntry() -> (index: UInt32, incarnation: UInt32)? {
        for i in 0..<enclaveCapacity where records[Int(i)].state != EDMM_ENCLAVE_ALIVE {
            let r = record(i)
            r.pointee.incarnation &+= 1
            r.pointee.resident_pages = 0
            r.pointee.ewb = 0
            r.pointee.flags = 0
            r.pointee.page_cnt = 0
            r.pointee.va_pages = 0
            r.pointee.secs_slot = 0
            for j in 0..<Int(EDMM_MAX_ATTACHED) { attachments(i)[j] = edmm_attachment() }
            r.pointee.attached_count = 0
            r.pointee.state = EDMM_ENCLAVE_ALIVE
            attach(index: i)
            return (i, r.pointee.incarnation)
        }
        return nil
    }

    /// Registers this process on an enclave it opened; fails if the enclave is gone.
    func attach(index: UInt32, incarnation: UInt32) throws(SimulatorError) {
        guard index < enclaveCapacity else { throw .corruptHeader("enclave index \(index) out of range") }
        try withLock { () throws(SimulatorError) in
            let r = record(index)
            guard r.pointee.state == EDMM_ENCLAVE_ALIVE, r.pointee.incarnation == incarnation else {
                throw .enclaveReleased(index: index)
            }
            guard attach(index: index) else { throw .tooManyAttachedProcesses(limit: Int(EDMM_MAX_ATTACHED)) }
        }
    }

    @discardableResult
    private func attach(index: UInt32) -> Bool {
        let me = ProcessIdentity.current
        let list = attachments(index)
        if let i = list.firstIndex(where: { $0.pid == me.pid && $0.start_time == me.startTime && $0.refs > 0 }) {
            guard list[i].refs < UInt32.max else { return false }
            list[i].refs += 1
            return true
        }
        guard let i = list.firstIndex(where: { $0.refs == 0 }) else { return false }
        list[i] = edmm_attachment(pid: me.pid, refs: 1, start_time: me.startTime)
        edmm_store32(&record(index).pointee.attached_count, record(index).pointee.attached_count &+ 1)
        return true
    }

    /// Drops this process's reference; the last reference from any process releases the
    /// enclave's EPC, as the kernel does when the last fd and mapping go.
    func detach(index: UInt32, incarnation: UInt32) {
        _ = locked {
            let r = record(index)
            guard r.pointee.state == EDMM_ENCLAVE_ALIVE, r.pointee.incarnation == incarnation else { return }
            let me = ProcessIdentity.current
            let list = attachments(index)
            if let i = list.firstIndex(where: { $0.pid == me.pid && $0.start_time == me.startTime && $0.refs > 0 }) {
                list[i].refs -= 1
                if list[i].refs == 0 {
                    list[i] = edmm_attachment()
                    edmm_store32(&r.pointee.attached_count, r.pointee.attached_count &- 1)
                }
            }
            if !list.contains(where: { $0.refs > 0 }) { release(index: index) }
        }
    }

    /// Lock-free: processes attached to the enclave (the IPI fan-out of one ETRACK).
    func attachedProcessCount(index: UInt32) -> UInt64 {
        UInt64(edmm_load32(&record(index).pointee.attached_count))
    }

    func isAlive(index: UInt32, incarnation: UInt32) -> Bool {
        index < enclaveCapacity && records[Int(index)].state == EDMM_ENCLAVE_ALIVE
            && records[Int(index)].incarnation == incarnation
    }

    private func release(index: UInt32) {
        let owner = UInt64(index) + 1
        let highWater = Int(min(header.pointee.high_water, epcPages))
        let r = record(index)
        // The counts are client-writable: clamped, they only end the scan early.
        var remaining = min(r.pointee.resident_pages, epcPages) + min(UInt64(r.pointee.va_pages), epcPages)
            + (r.pointee.secs_slot != 0 ? 1 : 0)
        var i = 0
        while remaining > 0, i < highWater {
            if slots[i].tag & 0xFFFF_FFFF == owner {
                releaseSlot(i)
                remaining -= 1
            }
            i += 1
        }
        r.pointee.resident_pages = 0
        r.pointee.va_pages = 0
        r.pointee.secs_slot = 0
        r.pointee.state = EDMM_ENCLAVE_RELEASED
    }

    /// Releases every enclave no live process has open (their holders died without closing).
    /// Returns how many were released. Runs by itself when the EPC is full, at most once per
    /// revolution of the clock.
    @discardableResult
    public func sweepDeadEnclaves() -> Int { locked { sweepDeadEnclavesLocked() } ?? 0 }

    /// `sweepDeadEnclaves` for a caller that serves others and must not wait on a lock a client
    /// can hold (a client stopped by a debugger holds it for as long as it is stopped): nil, and
    /// nothing done, when the machine lock is held now.
    public func sweepDeadEnclavesIfIdle() -> Int? { withLockIfFree { sweepDeadEnclavesLocked() } }

    private func sweepDeadEnclavesLocked() -> Int {
        header.pointee.sweeps &+= 1
        header.pointee.ewb_at_last_sweep = header.pointee.ewb
        var released = 0
        for i in 0..<enclaveCapacity where records[Int(i)].state == EDMM_ENCLAVE_ALIVE {
            let list = attachments(i)
            var live: UInt32 = 0
            for j in 0..<list.count where list[j].refs > 0 {
                if ProcessIdentity(pid: list[j].pid, startTime: list[j].start_time).isAlive {
                    live += 1
                } else {
                    list[j] = edmm_attachment()
                }
            }
            edmm_store32(&records[Int(i)].attached_count, live)
            if live == 0 {
                release(index: i)
                released += 1
            }
        }
        return released
    }

    private func sweepIfDue() -> Bool {
        guard header.pointee.sweeps == 0 || header.pointee.ewb &- header.pointee.ewb_at_last_sweep >= epcPages else {
            return false
        }
        return sweepDeadEnclavesLocked() > 0
    }

    // MARK: Views

    /// The machine's figures, read without the lock, one atomic load each: a client that holds
    /// the lock (stopped in a debugger) cannot stall whoever looks, and the figures may be a
    /// moment apart. The used count is clamped to the EPC; the counters are as written.
    public var stats: Stats {
        var alive = 0
        var secs: UInt64 = 0
        var va: UInt64 = 0
        for i in 0..<Int(enclaveCapacity) where edmm_load32(&records[i].state) == EDMM_ENCLAVE_ALIVE {
            alive += 1
            if edmm_load32(&records[i].secs_slot) != 0 { secs += 1 }
            va &+= UInt64(edmm_load32(&records[i].va_pages))
        }
        return Stats(
            epcPages: epcPages, usedPages: min(edmm_load64(&header.pointee.used_pages), epcPages), secsPages: min(secs, epcPages),
            vaPages: min(va, epcPages), ewb: edmm_load64(&header.pointee.ewb), eldu: edmm_load64(&header.pointee.eldu),
            aliveEnclaves: alive, sweeps: edmm_load64(&header.pointee.sweeps),
            lockRecoveries: edmm_load64(&header.pointee.lock_recoveries))
    }

    /// Per-enclave figures kept in the machine region (the evictor does not touch enclave
    /// regions), read like `stats`: without the lock, each page count clamped to the EPC.
    func footprint(index: UInt32) -> (usage: EPCUsage, ewb: UInt64) {
        let r = record(index)
        let usage = EPCUsage(
            enclavePages: min(edmm_load64(&r.pointee.resident_pages), epcPages),
            secsPages: edmm_load32(&r.pointee.secs_slot) != 0 ? 1 : 0,
            vaPages: min(UInt64(edmm_load32(&r.pointee.va_pages)), epcPages))
        return (usage, edmm_load64(&r.pointee.ewb))
    }

    // MARK: Fault injection

    /// The faults every process of this machine injects now.
    public var faults: SimulatorFaults {
        var rates: [SimulatorFaults.Kind: Double] = [:]
        for kind in SimulatorFaults.Kind.allCases {
            rates[kind] = Double(edmm_fault_rate(faultTable, kind.slot)) / Double(SimulatorFaults.million)
        }
        return SimulatorFaults(seed: edmm_load64(&faultTable.pointee.seed), rates: rates)
    }

    /// Changes the faults for every process of this machine, and numbers their opportunities
    /// from 0 again (so a test can tell with `SimulatorFaults.injects(_:draw:)` which will fail).
    public func setFaults(_ faults: SimulatorFaults) {
        _ = locked {
            for kind in SimulatorFaults.Kind.allCases { edmm_fault_set_rate(faultTable, kind.slot, 0) }
            edmm_store64(&faultTable.pointee.seed, faults.seed)
            edmm_fault_reset_counts(faultTable)
            for kind in SimulatorFaults.Kind.allCases {
                edmm_fault_set_rate(faultTable, kind.slot, SimulatorFaults.partsPerMillion(faults.rate(kind)))
            }
        }
    }

    /// Opportunities and injected faults of each kind since the faults were last set.
    public var faultCounts: [SimulatorFaults.Kind: FaultCount] {
        return Dictionary(
            uniqueKeysWithValues: SimulatorFaults.Kind.allCases.map {
                ($0, FaultCount(opportunities: edmm_fault_draws(faultTable, $0.slot), injected: edmm_fault_injected(faultTable, $0.slot)))
            })
    }

    /// Whether this opportunity of `kind` fails (one relaxed load when the kind is off).
    @inline(__always) func injects(_ kind: SimulatorFaults.Kind) -> Bool {
        let ppm = edmm_fault_rate(faultTable, kind.slot)
        guard ppm != 0 else { return false }
        let draw = edmm_fault_take_draw(faultTable, kind.slot)
        guard SimulatorFaults.decide(seed: edmm_load64(&faultTable.pointee.seed), kind: kind.slot, draw: draw, partsPerMillion: ppm)
        else { return false }
        edmm_fault_note_injected(faultTable, kind.slot)
        return true
    }
}

/// The EPC pages one enclave occupies now.
public struct EPCUsage: Sendable, Equatable {
    /// Its enclave pages (REG, TCS, TRIM) in the EPC.
    public var enclavePages: UInt64
    /// 1 while its SECS is in the EPC: written back with its last page, loaded back with its first.
    public var secsPages: UInt64
    /// Its Version Array pages: one per 512 pages it has grown by, never evicted, freed only when
    /// the enclave is released (REMOVE_PAGES does not give them back).
    public var vaPages: UInt64

    public init(enclavePages: UInt64, secsPages: UInt64, vaPages: UInt64) {
        self.enclavePages = enclavePages
        self.secsPages = secsPages
        self.vaPages = vaPages
    }

    public var total: UInt64 { enclavePages + secsPages + vaPages }
}

extension String {
    func leftPadded(_ width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
