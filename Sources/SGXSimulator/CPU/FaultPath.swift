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
            let pteValid = pte != nil && w.present && pte == w.mapGen && isResident(e!)
            guard let vma, Self.vmaAllows(vma.prot, kind) else {
                // access_error(): SIGSEGV, reported with the hardware error code.
                return .exception(.pageFault(errorCode: kind.errorCode(present: pteValid), address: pageAddress))
            }
            if pteValid { return .mapped(e!, page: page) }
            region.count(.driverFaults)
            if fromHost { region.count(.hostFaults) }
            let entry: UnsafeMutablePointer<edmm_page_entry>
            if machine.supportsSGX2 && !w.present {
                guard let added = eaug(page) else { return .sigbus(errorCode: kind.errorCode(present: false)) }
                entry = added
            } else {
                // sgx_encl_load_page_in_vma(): a hole without SGX2, or a VMA wider than the
                // page's vm_max_prot_bits, is SIGBUS.
                guard let e, w.present, w.vmMaxProt.isSuperset(of: vma.prot) else {
                    return .sigbus(errorCode: kind.errorCode(present: false))
                }
                makeResident(e, page: page, reload: true)
                entry = e
            }
            let mapGen = region.word(entry).mapGen
            local.withLock { $0.space.installPTE(page, mapGen: mapGen) }
        }
        return .sigbus(errorCode: kind.errorCode(present: false))
    }

    /// `access_error()`: a write needs VM_WRITE, a fetch VM_EXEC, a read any of the three.
    static func vmaAllows(_ prot: PagePermissions, _ kind: AccessKind) -> Bool {
        switch kind {
        case .read: prot != .none
        case .write: prot.contains(.write)
        case .fetch: prot.contains(.execute)
        }
    }

    /// `sgx_encl_eaug_page()`: a fresh zeroed page, PT_REG, EPCM RW- PENDING, kernel cap RWX.
    /// nil (SIGBUS) before EINIT. A hole's contents are zero unless a REMOVE still has to
    /// discard them (stale), which is then done here.
    func eaug(_ page: UInt64) -> UnsafeMutablePointer<edmm_page_entry>? {
        guard region.isInitialized, let e = region.entry(page, create: true) else { return nil }
        let old = region.word(e)
        guard !old.present else { return nil }
        if old.flags & UInt8(EDMM_PAGE_STALE) != 0 { region.discardContents(from: page, to: page + 1) }
        makeResident(e, page: page, reload: false)
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
