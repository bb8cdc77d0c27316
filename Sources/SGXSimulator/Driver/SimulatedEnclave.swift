import CEDMMShims
import EDMMCore
import Glibc
import SGXDevice
import Synchronization

/// One simulated enclave, as one process sees it: what a `/dev/sgx_enclave` fd plus its
/// mappings are to a real process. The kernel side (SGX1 build ioctls, the three SGX2 ioctls,
/// mmap/mprotect, the fault handler with EAUG) and the CPU side (enclave memory accesses,
/// EACCEPT, EACCEPTCOPY, EMODPE, EENTER/ERESUME/EEXIT/AEX) both act on the shared enclave region
/// and the machine's EPC.
///
/// Hand the enclave to another process by passing `fd` (inheritance or SCM_RIGHTS); the receiver
/// calls `open(fd:machine:)` with the machine it already has.
public final class SimulatedEnclave: EnclaveDevice, @unchecked Sendable {
    public let kind: EnclaveDeviceKind = .simulated
    public let machine: SimulatedMachine
    let region: EnclaveRegion
    let index: UInt32
    let incarnation: UInt32
    /// Process-local: VMAs, PTEs and the resume points of threads that took an AEX.
    let local = Mutex(LocalState())
    /// Test seam: called between the pages of an SGX2 ioctl with `encl->lock` dropped, exactly
    /// where the kernel lets other faults, ioctls and enclave threads interleave.
    let pageBoundaryHook = Mutex<(@Sendable (UInt64) -> Void)?>(nil)
    private let detached = Atomic<Bool>(false)
    /// This handle told the machine that its process mapped the enclave (`noteMapped`).
    let mappedNoted = Atomic<Bool>(false)

    struct LocalState {
        var space = AddressSpace()
        var resumePoints: [UInt64: ResumePoint] = [:]
    }

    /// The enclave memfd; pass it to another process like a `/dev/sgx_enclave` fd.
    public var fd: Int32 { region.descriptor.fd }
    /// ELRANGE.
    public var base: UInt64 { region.base }
    public var size: UInt64 { region.size }
    public var isInitialized: Bool { region.isInitialized }
    /// Whether this process mapped page contents (the daemon maps only metadata).
    public var hasContents: Bool { region.contents != nil }

    /// `index` and `incarnation` are the values `machine.attach` validated, never re-read from the
    /// region, which another process may have rewritten since.
    private init(machine: SimulatedMachine, region: EnclaveRegion, index: UInt32, incarnation: UInt32) {
        self.machine = machine
        self.region = region
        self.index = index
        self.incarnation = incarnation
    }

    /// Which enclave this is: its entry in its machine's enclave table, and the entry's
    /// incarnation. Every descriptor of the enclave (a dup, the memfd opened again) gives the same.
    /// The machine, the entry of its enclave table, and that entry's use: the same for every
    /// descriptor of the enclave.
    public struct Identity: Hashable, Sendable {
        public let machineUUIDHigh: UInt64
        public let machineUUIDLow: UInt64
        public let index: UInt32
        public let incarnation: UInt32
    }

    public var identity: Identity {
        Identity(machineUUIDHigh: machine.uuid.hi, machineUUIDLow: machine.uuid.lo, index: index, incarnation: incarnation)
    }

    deinit { close() }

    /// Whether `close()` ran (this process no longer holds the enclave).
    public var isClosed: Bool { detached.load(ordering: .acquiring) }

    /// Drops this process's attachment (also done on deinit). The last process to close an
    /// enclave releases its EPC.
    public func close() {
        guard !detached.exchange(true, ordering: .acquiringAndReleasing) else { return }
        machine.detach(index: index, incarnation: incarnation)
    }

    /// `close`, then releases the enclave if every other process that had it open died without
    /// closing it; skipped if a client holds the machine lock now (the daemon must not wait on
    /// it), when the next full sweep does it.
    public func closeReleasingIfOrphaned() {
        close()
        _ = machine.sweepDeadHoldersIfIdle(index: index, incarnation: incarnation)
    }

    // MARK: Create and open

    /// ECREATE in a new enclave memfd on `machine`: ELRANGE `[base, base + size)`, `size` a power
    /// of two of at least two pages and `base` aligned to it. The enclave takes two EPC pages at
    /// once, as in the kernel: a VA page and its SECS. `mapContents: false` maps only the metadata.
    public static func create(
        machine: SimulatedMachine, base: UInt64, size: UInt64, mapContents: Bool = true
    ) throws(SimulatorError) -> SimulatedEnclave {
        if let problem = EnclaveLayout.validateELRANGE(base: base, size: size) {
            throw .invalidConfiguration("ECREATE: \(problem)")
        }
        let layout = EnclaveLayout(size: size)
        let fd = try SharedDescriptor.memfd(name: "edmm-sim-enclave", size: layout.regionSize)
        let (index, incarnation) = try machine.registerEnclave()
        do throws(SimulatorError) {
            guard machine.locked({ machine.placeControlPages(owner: index) }) == true else {
                // sgx_alloc_epc_page() found nothing to reclaim.
                throw .system(call: "SGX_IOC_ENCLAVE_CREATE", errno: ENOMEM)
            }
            let metadata = try MappedRegion(fd: fd.fd, offset: 0, length: layout.metadataSize)
            let h = metadata.pointer(at: 0, as: edmm_enclave_header.self)
            h.pointee.version = EDMM_SHM_VERSION
            h.pointee.header_size = UInt32(layout.headerSize)
            h.pointee.region_size = layout.regionSize
            h.pointee.directory_offset = layout.directoryOffset
            h.pointee.directory_entries = layout.directoryEntries
            h.pointee.pool_offset = layout.poolOffset
            h.pointee.pool_blocks = layout.poolBlocks
            h.pointee.block_owner_offset = layout.blockOwnerOffset
            h.pointee.metadata_size = layout.metadataSize
            h.pointee.data_offset = layout.dataOffset
            h.pointee.machine_uuid_hi = machine.uuid.hi
            h.pointee.machine_uuid_lo = machine.uuid.lo
            h.pointee.enclave_index = index
            h.pointee.incarnation = incarnation
            h.pointee.base = base
            h.pointee.size = size
            h.pointee.flags = EDMM_ENCL_CREATED
            let rc = edmm_mutex_init(&h.pointee.lock)
            guard rc == 0 else { throw .system(call: "pthread_mutex_init", errno: rc) }
            edmm_store64(&h.pointee.magic, EDMM_ENCLAVE_MAGIC)
            let region = try EnclaveRegion(descriptor: fd, layout: layout, base: base, size: size, mapContents: mapContents)
            let enclave = SimulatedEnclave(machine: machine, region: region, index: index, incarnation: incarnation)
            region.count(.ecreate)
            return enclave
        } catch {
            machine.detach(index: index, incarnation: incarnation)
            throw error
        }
    }

    /// Opens an enclave another process created (its memfd, received like a `/dev/sgx_enclave`
    /// fd), validating the region before trusting anything in it. The caller's fd is duplicated.
    public static func open(
        fd: Int32, machine: SimulatedMachine, mapContents: Bool = true
    ) throws(SimulatorError) -> SimulatedEnclave {
        _ = try RegionProbe.read(fd: fd, expected: .enclave, headerSize: MemoryLayout<edmm_enclave_header>.size)
        let owned = try SharedDescriptor.duplicate(fd)
        var header = edmm_enclave_header()
        let got = withUnsafeMutableBytes(of: &header) { pread(owned.fd, $0.baseAddress, $0.count, 0) }
        guard got == MemoryLayout<edmm_enclave_header>.size else { throw .system(call: "pread", errno: errno) }
        if let problem = EnclaveLayout.validateELRANGE(base: header.base, size: header.size) {
            throw .corruptHeader(problem)
        }
        let layout = EnclaveLayout(size: header.size)
        guard EnclaveLayout(header: &header) == layout else {
            throw .corruptHeader("layout does not match an ELRANGE of \(header.size) bytes")
        }
        guard header.machine_uuid_hi == machine.uuid.hi, header.machine_uuid_lo == machine.uuid.lo else {
            throw .wrongMachine
        }
        try machine.attach(index: header.enclave_index, incarnation: header.incarnation)
        do throws(SimulatorError) {
            let region = try EnclaveRegion(
                descriptor: owned, layout: layout, base: header.base, size: header.size, mapContents: mapContents)
            return SimulatedEnclave(machine: machine, region: region, index: header.enclave_index, incarnation: header.incarnation)
        } catch {
            machine.detach(index: header.enclave_index, incarnation: header.incarnation)
            throw error
        }
    }

    // MARK: Views

    /// This enclave's counters (shared by every process that has it open).
    public var counters: CounterSnapshot {
        var snapshot = CounterSnapshot(values: region.counters())
        snapshot[.ewb] = machine.footprint(index: index).ewb
        return snapshot
    }

    /// Its enclave pages (REG, TCS, TRIM) in the EPC now (`epcUsage` adds the SECS and VA pages).
    public var residentPages: UInt64 { epcUsage.enclavePages }

    /// Every EPC page this enclave occupies now: its enclave pages, its SECS and its VA pages.
    public var epcUsage: EPCUsage { machine.footprint(index: index).usage }

    /// Pages that exist (the kernel's xarray entries), resident or evicted: read without the
    /// lock, and clamped to ELRANGE (the header is client-writable).
    public var presentPages: UInt64 { min(edmm_load64(&region.header.pointee.present_pages), region.pageCount) }

    /// The page at `offset` bytes from base.
    public func pageInfo(offset: UInt64) -> PageInfo {
        let page = offset >> Page.shift
        return (try? region.withLock { info(page) })
            ?? PageInfo(
                state: .hole, permissions: .none, kernelType: nil, vmMaxProtection: .none, resident: false)
    }

    func info(_ page: UInt64) -> PageInfo {
        guard let e = region.entry(page, create: false) else {
            return PageInfo(state: .hole, permissions: .none, kernelType: nil, vmMaxProtection: .none, resident: false)
        }
        let w = region.word(e)
        return PageInfo(
            state: w.state, permissions: w.present ? w.epcmPermissions : .none,
            kernelType: w.present ? SGXPageType(rawValue: w.kernelType) : nil,
            vmMaxProtection: w.present ? w.vmMaxProt : .none, resident: w.present && isResident(e))
    }

    /// Installs (or clears) the test seam called between the pages of an SGX2 ioctl.
    public func setPageBoundaryHook(_ hook: (@Sendable (UInt64) -> Void)?) {
        pageBoundaryHook.withLock { $0 = hook }
    }
}
