import CEDMMShims
import EDMMCore
import Glibc
import SGXDevice

/// The three SGX2 ioctls, step for step as `arch/x86/kernel/cpu/sgx/ioctl.c` runs them:
/// the IOCTL busy bit, `sgx_ioc_sgx2_ready()`, parameter validation (EINVAL, nothing copied
/// back), then a per-page worker that drops `encl->lock` between pages and always copies the
/// struct back with `count` (and `result` where the ENCLS leaf returned an SGX error code).
extension SimulatedEnclave {
    public func restrictPermissions(_ params: inout RestrictPermissionsParams) -> Int32 {
        withIoctl(.ioctlRestrictPermissions) { () -> Int32 in
            if let notReady = sgx2NotReady() { return notReady }
            guard validRange(offset: params.offset, length: params.length),
                params.permissions & ~SecInfoFlags.permissionMask == 0
            else { return EINVAL }
            let perms = PagePermissions(rawValue: UInt8(params.permissions))
            // "fail early ... to prevent ENCLS[EMODPR] from faulting"
            if perms.contains(.write) && !perms.contains(.read) { return EINVAL }
            guard params.result == 0, params.count == 0 else { return EINVAL }
            var p = params
            let rc = forEachPage(offset: p.offset, length: p.length, count: &p.count) { e, _ in
                if region.word(e).kernelType != SGXPageType.reg.rawValue { return EINVAL }
                switch emodpr(e, perms, mayConflict: true) {
                case .done: break
                case .error(let code):
                    p.result = code
                    return EFAULT
                case .fault: return EFAULT
                }
                etrack()
                return 0
            }
            params = p
            return rc
        }
    }

    public func modifyTypes(_ params: inout ModifyTypesParams) -> Int32 {
        withIoctl(.ioctlModifyTypes) { () -> Int32 in
            if let notReady = sgx2NotReady() { return notReady }
            guard validRange(offset: params.offset, length: params.length) else { return EINVAL }
            guard params.pageType & ~0xFF == 0 else { return EINVAL }
            guard params.result == 0, params.count == 0 else { return EINVAL }
            // Checked in the worker, before the loop: the struct is copied back unchanged.
            guard let target = SGXPageType(rawValue: UInt8(params.pageType)), target == .tcs || target == .trim else {
                return EINVAL
            }
            var p = params
            let rc = forEachPage(offset: p.offset, length: p.length, count: &p.count) { e, _ in
                var w = region.word(e)
                let ktype = SGXPageType(rawValue: w.kernelType)
                // "Regular pages can change type to TCS or TRIM but TCS pages can only be trimmed."
                guard ktype == .reg || (ktype == .tcs && target == .trim) else { return EINVAL }
                let maxProtRestore = w.vmMaxProt
                if ktype == .reg && target == .tcs {
                    guard w.vmMaxProt.isSuperset(of: .rw) else { return EPERM }
                    // sgx_unmark_page_reclaimable() failed: the cap goes back, nothing else changed.
                    if machine.injects(.reclaimerHoldsPage) { return EAGAIN }
                    w.vmMaxProt = .rw
                    w.mapGen &+= 1  // sgx_zap_enclave_ptes(): every mm loses its PTE
                    region.store(w, e)
                }
                switch emodt(e, target) {
                case .done: break
                case .error(let code):
                    p.result = code
                    restoreVMMaxProt(e, maxProtRestore)
                    return EFAULT
                case .fault:
                    restoreVMMaxProt(e, maxProtRestore)
                    return EFAULT
                }
                etrack()
                var updated = region.word(e)
                updated.kernelType = target.rawValue  // only after ETRACK succeeded
                region.store(updated, e)
                return 0
            }
            params = p
            return rc
        }
    }

    public func removePages(_ params: inout RemovePagesParams) -> Int32 {
        withIoctl(.ioctlRemovePages) { () -> Int32 in
            if let notReady = sgx2NotReady() { return notReady }
            guard validRange(offset: params.offset, length: params.length) else { return EINVAL }
            guard params.count == 0 else { return EINVAL }
            var p = params
            defer { discardRemovedContents(offset: p.offset, count: p.count) }
            let rc = forEachPage(offset: p.offset, length: p.length, count: &p.count) { e, page in
                if region.word(e).kernelType != SGXPageType.trim.rawValue { return EPERM }
                // EMODPR(RWX) as a probe: SGX_PAGE_NOT_MODIFIABLE while the trim is not yet
                // accepted, #PF once it is; only the fault lets removal proceed. (A conflict here
                // would be EPERM too, but needs an EACCEPT of an accepted TRIM page: not injected.)
                guard case .fault = emodpr(e, .rwx, mayConflict: false) else { return EPERM }
                if machine.injects(.reclaimerHoldsPage) { return EBUSY }
                var w = region.word(e)
                w.mapGen &+= 1  // zap PTEs in every mm
                region.store(w, e)
                eremove(e)
                return 0
            }
            params = p
            return rc
        }
    }

    // MARK: Machinery shared by the three

    private func withIoctl(_ counter: SimCounter, _ body: () -> Int32) -> Int32 {
        guard region.tryBeginIoctl() else {
            region.count(.ioctlBusy)
            return EBUSY
        }
        defer { region.endIoctl() }
        region.count(counter)
        return body()
    }

    /// `sgx_ioc_sgx2_ready()`, checked before the struct is even copied in.
    private func sgx2NotReady() -> Int32? {
        if !machine.supportsSGX2 { return ENODEV }
        if !region.isInitialized { return EINVAL }
        return nil
    }

    /// The per-page loop of all three workers: for each page, take `encl->lock`, load the page
    /// (`sgx_encl_load_page()`: a hole is EFAULT; an evicted page is reloaded with ELDU; EAGAIN
    /// only when injected, EFAULT when nothing in the EPC can make room), run `work`, drop the
    /// lock. `count` ends as the bytes of pages fully processed.
    private func forEachPage(
        offset: UInt64, length: UInt64, count: inout UInt64,
        _ work: (UnsafeMutablePointer<edmm_page_entry>, UInt64) -> Int32
    ) -> Int32 {
        let hook = pageBoundaryHook.withLock { $0 }
        var c: UInt64 = 0
        var rc: Int32 = 0
        while c < length {
            if c > 0, let hook { hook(c) }
            let page = (offset + c) >> Page.shift
            let step: Int32? = try? region.withLock { () -> Int32 in
                guard let e = region.entry(page, create: false), region.word(e).present else { return EFAULT }
                if machine.injects(.loadBusy) { return EAGAIN }
                guard makeResident(e, page: page, grows: false) else { return EFAULT }
                return work(e, page)
            }
            rc = step ?? EIO
            if rc != 0 { break }
            c += Page.size
        }
        count = c
        return rc
    }

    private func restoreVMMaxProt(_ e: UnsafeMutablePointer<edmm_page_entry>, _ prot: PagePermissions) {
        var w = region.word(e)
        w.vmMaxProt = prot
        region.store(w, e)
    }

    /// `sgx_enclave_etrack()`: ETRACK, then an IPI to every CPU running the enclave's mms
    /// (`sgx_encl_cpumask()`), modelled as one IPI per process that mapped the enclave.
    private func etrack() {
        region.count(.etrack)
        region.count(.ipis, machine.mappedProcessCount(index: index))
    }

    enum ENCLSOutcome {
        case done
        case error(UInt64)
        case fault
    }

    /// ENCLS[EMODPR] in the SDM's order: a page another SGX instruction holds (an injected
    /// conflict, when `mayConflict`) is SGX_EPC_PAGE_CONFLICT (7); then PENDING/MODIFIED (error
    /// 20) is tested before the page type (#PF), which is what the REMOVE_PAGES probe relies on.
    func emodpr(_ e: UnsafeMutablePointer<edmm_page_entry>, _ perms: PagePermissions, mayConflict: Bool) -> ENCLSOutcome {
        region.count(.emodpr)
        if mayConflict && machine.injects(.pageConflict) { return .error(SGXErrorCode.epcPageConflict) }
        var w = region.word(e)
        if w.pending || w.modified { return .error(SGXErrorCode.pageNotModifiable) }
        if w.epcmType != SGXPageType.reg.rawValue { return .fault }
        w.set(EDMM_PAGE_PR, true)
        w.epcmPermissions = w.epcmPermissions.intersection(perms)
        region.store(w, e)
        return .done
    }

    /// ENCLS[EMODT] in the SDM's order: a page another SGX instruction holds (injected) is
    /// SGX_EPC_PAGE_CONFLICT (7); the type test (#PF) precedes PENDING/MODIFIED (20).
    func emodt(_ e: UnsafeMutablePointer<edmm_page_entry>, _ target: SGXPageType) -> ENCLSOutcome {
        region.count(.emodt)
        if machine.injects(.pageConflict) { return .error(SGXErrorCode.epcPageConflict) }
        var w = region.word(e)
        let pt = SGXPageType(rawValue: w.epcmType)
        guard pt == .reg || (pt == .tcs && target == .trim) else { return .fault }
        if w.pending || w.modified { return .error(SGXErrorCode.pageNotModifiable) }
        w.set(EDMM_PAGE_PR, false)
        w.set(EDMM_PAGE_MODIFIED, true)
        w.epcmPermissions = .none
        w.epcmType = target.rawValue
        region.store(w, e)
        return .done
    }

    /// EREMOVE plus the kernel's bookkeeping: the EPC page is freed and the xarray entry erased
    /// (the address becomes a hole). The contents are discarded after the ioctl, in runs (one
    /// hole punch per run instead of one per page); until then the hole is marked stale, and an
    /// EAUG that gets there first discards that page itself.
    func eremove(_ e: UnsafeMutablePointer<edmm_page_entry>) {
        region.count(.eremove)
        releaseEPC(e)
        var hole = PageWord(0)
        hole.mapGen = region.word(e).mapGen
        hole.set(EDMM_PAGE_STALE, true)
        region.store(hole, e)
        region.header.pointee.present_pages &-= 1
    }

    /// Punches the contents of the stale holes among the `count` bytes at `offset`, so that a
    /// hole always reads as zeros once EAUG'ed.
    private func discardRemovedContents(offset: UInt64, count: UInt64) {
        guard count > 0 else { return }
        _ = try? region.withLock { () -> Void in
            var runStart: UInt64?
            let first = offset >> Page.shift
            let end = first + count >> Page.shift
            for page in first...end {
                var stale = false
                if page < end, let e = region.entry(page, create: false) {
                    var w = region.word(e)
                    if !w.present && w.flags & UInt8(EDMM_PAGE_STALE) != 0 {
                        stale = true
                        w.set(EDMM_PAGE_STALE, false)
                        region.store(w, e)
                    }
                }
                if stale, runStart == nil { runStart = page }
                if !stale, let start = runStart {
                    region.discardContents(from: start, to: page)
                    runStart = nil
                }
            }
        }
    }
}
