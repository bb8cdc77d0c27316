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
