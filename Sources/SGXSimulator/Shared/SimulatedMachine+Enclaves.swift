import CEDMMShims
import Glibc

/// The machine's enclave table: registration, attachment by each process, release.
extension SimulatedMachine {
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

    /// This process's live entry among the enclave's attachments, if any.
    private func ownAttachment(_ list: UnsafeMutableBufferPointer<edmm_attachment>, _ me: ProcessIdentity) -> Int? {
        list.firstIndex { $0.pid == me.pid && $0.start_time == me.startTime && $0.refs > 0 }
    }

    @discardableResult
    private func attach(index: UInt32) -> Bool {
        let me = ProcessIdentity.current
        let list = attachments(index)
        if let i = ownAttachment(list, me) {
            guard list[i].refs < UInt32.max else { return false }
            list[i].refs += 1
            return true
        }
        guard let i = list.firstIndex(where: { $0.refs == 0 }) else { return false }
        list[i] = edmm_attachment(pid: me.pid, refs: 1, start_time: me.startTime, mapped: 0, reserved: 0)
        edmm_store32(&record(index).pointee.attached_count, record(index).pointee.attached_count &+ 1)
        return true
    }

    /// Drops this process's reference; the last reference from any process releases the
    /// enclave's EPC, as the kernel does when the last fd and mapping go.
    func detach(index: UInt32, incarnation: UInt32) {
        _ = locked {
            let r = record(index)
            guard r.pointee.state == EDMM_ENCLAVE_ALIVE, r.pointee.incarnation == incarnation else { return }
            let list = attachments(index)
            if let i = ownAttachment(list, .current) {
                list[i].refs -= 1
                if list[i].refs == 0 {
                    if list[i].mapped != 0 { edmm_store32(&r.pointee.mapped_count, r.pointee.mapped_count &- 1) }
                    list[i] = edmm_attachment()
                    edmm_store32(&r.pointee.attached_count, r.pointee.attached_count &- 1)
                }
            }
            if !list.contains(where: { $0.refs > 0 }) { release(index: index) }
        }
    }

    /// This process mapped the enclave: from now until it lets the enclave go, ETRACK interrupts
    /// it. The kernel's `sgx_mmap()` adds the mm to `encl->mm_list`, which `sgx_encl_cpumask()`
    /// walks for the IPIs; a process that only holds the descriptor (edmmd) is never on it.
    func noteMapped(index: UInt32, incarnation: UInt32) {
        _ = locked {
            let r = record(index)
            guard r.pointee.state == EDMM_ENCLAVE_ALIVE, r.pointee.incarnation == incarnation else { return }
            let list = attachments(index)
            guard let i = ownAttachment(list, .current), list[i].mapped == 0 else { return }
            list[i].mapped = 1
            edmm_store32(&r.pointee.mapped_count, r.pointee.mapped_count &+ 1)
        }
    }

    /// Lock-free: processes that mapped the enclave (the IPI fan-out of one ETRACK).
    func mappedProcessCount(index: UInt32) -> UInt64 {
        UInt64(edmm_load32(&record(index).pointee.mapped_count))
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
        var remaining =
            min(r.pointee.resident_pages, epcPages) + min(UInt64(r.pointee.va_pages), epcPages)
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

    /// Forgets the attachments of dead processes to one enclave and releases it if none is left,
    /// without waiting on a lock a client can hold: nil, and nothing done, when the machine lock is
    /// held now. For a holder that closes the enclave (the daemon): whether the others are alive
    /// concerns this enclave alone, and a sweep of every enclave would cost one /proc read per
    /// attachment on the machine for each enclave closed.
    public func sweepDeadHoldersIfIdle(index: UInt32, incarnation: UInt32) -> Bool? {
        withLockIfFree {
            guard isAlive(index: index, incarnation: incarnation) else { return false }
            var liveness: [ProcessIdentity: Bool] = [:]
            return sweepLocked(index: index, &liveness)
        }
    }

    private func sweepDeadEnclavesLocked() -> Int {
        header.pointee.sweeps &+= 1
        header.pointee.ewb_at_last_sweep = header.pointee.ewb
        var released = 0
        // Many enclaves share a few holders: one /proc read per process, not per attachment.
        var liveness: [ProcessIdentity: Bool] = [:]
        for i in 0..<enclaveCapacity where records[Int(i)].state == EDMM_ENCLAVE_ALIVE {
            if sweepLocked(index: i, &liveness) { released += 1 }
        }
        return released
    }

    /// Drops the enclave's attachments of dead processes; releases it if none is left.
    private func sweepLocked(index: UInt32, _ liveness: inout [ProcessIdentity: Bool]) -> Bool {
        let list = attachments(index)
        var live: UInt32 = 0
        var mapped: UInt32 = 0
        for j in 0..<list.count where list[j].refs > 0 {
            let holder = ProcessIdentity(pid: list[j].pid, startTime: list[j].start_time)
            let alive = liveness[holder] ?? holder.isAlive
            liveness[holder] = alive
            if alive {
                live += 1
                if list[j].mapped != 0 { mapped += 1 }
            } else {
                list[j] = edmm_attachment()
            }
        }
        edmm_store32(&records[Int(index)].attached_count, live)
        edmm_store32(&records[Int(index)].mapped_count, mapped)
        guard live == 0 else { return false }
        release(index: index)
        return true
    }

    func sweepIfDue() -> Bool {
        guard header.pointee.sweeps == 0 || header.pointee.ewb &- header.pointee.ewb_at_last_sweep >= epcPages else {
            return false
        }
        return sweepDeadEnclavesLocked() > 0
    }
}
