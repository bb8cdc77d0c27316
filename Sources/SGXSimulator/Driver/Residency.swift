import CEDMMShims
import EDMMCore

/// EPC residency of enclave pages (callers hold the enclave lock; the machine lock is taken
/// inside, after it: enclave lock, then machine lock).
extension SimulatedEnclave {
    @inline(__always) func isResident(_ e: UnsafeMutablePointer<edmm_page_entry>) -> Bool {
        machine.isResident(slot: e.pointee.f.slot, gen: e.pointee.f.slot_gen, owner: index)
    }

    /// Gives the page an EPC page: a fresh one for EADD/EAUG, or ELDU for an evicted page. The
    /// clock may evict another page (EWB) to make room; nothing here returns EAGAIN.
    func makeResident(_ e: UnsafeMutablePointer<edmm_page_entry>, page: UInt64, reload: Bool) {
        if isResident(e) {
            machine.touch(slot: e.pointee.f.slot)
            return
        }
        let placed = machine.locked { () -> Bool in
            // A page of an enclave that was released (its index maybe reused since) never gets an
            // EPC page: slot tags name the index, not the incarnation. The access then faults.
            guard machine.isAlive(index: index, incarnation: incarnation), !isResident(e) else { return false }
            if reload { machine.countELDU() }
            machine.allocateSlot(owner: index, page: page) { slot, gen in
                edmm_store64(&e.pointee.w.residency, UInt64(gen) << 32 | UInt64(slot))
            }
            return true
        }
        if reload && placed == true { region.count(.eldu) }
    }

    /// EREMOVE's EPC side: the page's EPC page becomes free.
    func releaseEPC(_ e: UnsafeMutablePointer<edmm_page_entry>) {
        let slot = e.pointee.f.slot
        let gen = e.pointee.f.slot_gen
        _ = machine.locked { machine.freeSlot(slot: slot, gen: gen, owner: index) }
        edmm_store64(&e.pointee.w.residency, 0)
    }
}
