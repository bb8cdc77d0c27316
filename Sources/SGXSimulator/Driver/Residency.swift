import CEDMMShims
import EDMMCore

/// EPC residency of enclave pages (callers hold the enclave lock; the machine lock is taken
/// inside, after it: enclave lock, then machine lock).
extension SimulatedEnclave {
    @inline(__always) func isResident(_ e: UnsafeMutablePointer<edmm_page_entry>) -> Bool {
        machine.isResident(slot: e.pointee.f.slot, gen: e.pointee.f.slot_gen, owner: index)
    }

    /// Gives the page an EPC page: a fresh one for EADD/EAUG (`grows`: the enclave gains a page,
    /// which may cost a VA page), or ELDU for an evicted page, after its SECS if that was evicted
    /// too. The clock may evict other pages (EWB) to make room; nothing here returns EAGAIN.
    /// False when the page cannot be placed: the enclave was released, or nothing in the EPC can
    /// be evicted (every page is a VA page or a SECS in use), the kernel's -ENOMEM.
    @discardableResult
    func makeResident(_ e: UnsafeMutablePointer<edmm_page_entry>, page: UInt64, grows: Bool) -> Bool {
        if isResident(e) {
            machine.touch(slot: e.pointee.f.slot)
            return true
        }
        // ELDUs done, or nil when the page could not be placed.
        let loads = machine.locked { () -> Int? in
            // A page of an enclave that was released (its index maybe reused since) never gets an
            // EPC page: slot tags name the index, not the incarnation. The access then faults.
            guard machine.isAlive(index: index, incarnation: incarnation) else { return nil }
            if isResident(e) { return 0 }
            let secsLoaded = machine.placePage(owner: index, page: page, grows: grows) { slot, gen in
                edmm_store64(&e.pointee.w.residency, UInt64(gen) << 32 | UInt64(slot))
            }
            return secsLoaded.map { ($0 ? 1 : 0) + (grows ? 0 : 1) }
        }
        guard case .some(.some(let eldu)) = loads else { return false }
        if eldu > 0 { region.count(.eldu, UInt64(eldu)) }
        return true
    }

    /// EREMOVE's EPC side: the page's EPC page becomes free, and the enclave counts one page
    /// less (its VA pages stay).
    func releaseEPC(_ e: UnsafeMutablePointer<edmm_page_entry>) {
        let slot = e.pointee.f.slot
        let gen = e.pointee.f.slot_gen
        _ = machine.locked { machine.removePage(slot: slot, gen: gen, owner: index) }
        edmm_store64(&e.pointee.w.residency, 0)
    }
}
