import CEDMMShims
import EDMMCore
import SGXDevice

/// How an access to the enclave mapping is resolved: the MMU (VMA/PTE), then on a missing PTE
/// the driver's `sgx_vma_fault()` (EAUG of a hole, or mapping an existing page after ELDU).
/// Callers hold the enclave lock.
extension SimulatedEnclave {
    enum Translation {
        case mapped(UnsafeMutablePointer<edmm_page_entry>, page: UInt64)
        case exception(CPUException)
        case sigbus(errorCode: UInt16)
    }

    /// `fromHost`: the access comes from outside the enclave (its faults are no AEX).
    func translate(_ address: UInt64, _ kind: AccessKind, fromHost: Bool = false) -> Translation {
        let pageAddress = address & ~(Page.size - 1)
        guard address >= base, address - base < size else {
            // Outside ELRANGE there is nothing of ours mapped.
            return .exception(.pageFault(errorCode: kind.errorCode(present: false), address: pageAddress))
        }
        let page = (address - base) >> Page.shift
        for _ in 0..<3 {
            let (vma, pte) = local.withLock { ($0.space.vma(containing: address), $0.space.pte(page)) }
            let e = region.entry(page, create: false)
            let w = e.map { region.word($0) } ?? PageWord(0)
            let installed = pte != nil && w.present && pte == w.mapGen && isResident(e!)
            // The PTEs of a PROT_NONE VMA are not present to the MMU.
            let present = installed && vma != nil && vma!.prot != .none
            guard let vma, Self.accessErrorAllows(vma.prot, kind, present: present) else {
                // access_error(): SIGSEGV, reported with the hardware error code.
                return .exception(.pageFault(errorCode: kind.errorCode(present: present), address: pageAddress))
            }
            if present { return .mapped(e!, page: page) }
            region.count(.driverFaults)
            if fromHost { region.count(.hostFaults) }
            let entry: UnsafeMutablePointer<edmm_page_entry>
            if machine.supportsSGX2 && !w.present {
                guard let added = eaug(page) else { return .sigbus(errorCode: kind.errorCode(present: false)) }
                entry = added
            } else {
                // sgx_encl_load_page_in_vma(): a hole without SGX2, or a VMA wider than the
                // page's vm_max_prot_bits, is SIGBUS; so is a reload with no EPC page to be had.
                guard let e, w.present, w.vmMaxProt.isSuperset(of: vma.prot), makeResident(e, page: page, grows: false) else {
                    return .sigbus(errorCode: kind.errorCode(present: false))
                }
                entry = e
            }
            let mapGen = region.word(entry).mapGen
            local.withLock { $0.space.installPTE(page, mapGen: mapGen) }
            // The CPU retries the access. From inside the enclave that took an AEX and an
            // ERESUME no host sees (the AEP returns straight into the enclave).
            if !fromHost { region.count(.resolvedFaults) }
        }
        return .sigbus(errorCode: kind.errorCode(present: false))
    }

    /// `access_error()` of `arch/x86/mm/fault.c` for a user fault in an enclave VMA. A write
    /// needs VM_WRITE. With the PTE present a fetch needs VM_EXEC (the PTE carries NX without
    /// it: the hardware's #PF with P, U and I set, 0x15). With no PTE a read or a fetch needs only
    /// an accessible VMA (`vma_is_accessible()`): the driver maps the page (EAUG for a hole) and a
    /// fetch then faults again on NX.
    static func accessErrorAllows(_ prot: PagePermissions, _ kind: AccessKind, present: Bool) -> Bool {
        switch kind {
        case .write: prot.contains(.write)
        case .read: prot != .none
        case .fetch: present ? prot.contains(.execute) : prot != .none
        }
    }

    /// `sgx_encl_eaug_page()`: a fresh zeroed page, PT_REG, EPCM RW- PENDING, kernel cap RWX.
    /// nil (SIGBUS) before EINIT, when the EPC has nothing to evict, or when injected
    /// (`eaug-sigbus`). A hole's contents are zero unless a REMOVE still has to discard them
    /// (stale), which is then done here.
    func eaug(_ page: UInt64) -> UnsafeMutablePointer<edmm_page_entry>? {
        guard region.isInitialized, let e = region.entry(page, create: true) else { return nil }
        let old = region.word(e)
        guard !old.present, !machine.injects(.eaugFailure) else { return nil }
        guard makeResident(e, page: page, grows: true) else { return nil }
        if old.flags & UInt8(EDMM_PAGE_STALE) != 0 { region.discardContents(from: page, to: page + 1) }
        region.store(.newPage(type: .reg, epcm: .rw, vmMax: .rwx, pending: true, mapGen: old.mapGen), e)
        region.header.pointee.present_pages &+= 1
        region.count(.eaug)
        return e
    }

    /// A host (non-enclave) access to the enclave mapping, e.g. the loader touching a mapped hole
    /// before EINIT (reference D22: SIGBUS, EAUG is refused before EINIT).
    public func untrustedAccess(address: UInt64, write: Bool) -> UntrustedAccessOutcome {
        let result = try? region.withLock { () -> UntrustedAccessOutcome in
            switch translate(address, write ? .write : .read, fromHost: true) {
            case .mapped: .abortPage
            case .exception: .sigsegv
            case .sigbus: .sigbus
            }
        }
        return result ?? .sigbus
    }
}
