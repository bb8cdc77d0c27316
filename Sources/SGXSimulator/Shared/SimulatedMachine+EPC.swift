import CEDMMShims
import Glibc

/// The EPC: its slots, their owners and residency, EWB and ELDU (reference §9).
extension SimulatedMachine {
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
    func tally(_ index: Int, owner: Int) {
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

    func releaseSlot(_ index: Int) {
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
}
