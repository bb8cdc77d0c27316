import CEDMMShims
import EDMMCore
import Glibc
import SGXDevice

/// The SGX1 build ioctls (ADD_PAGES, INIT) and the mmap/mprotect/munmap rules of the driver.
extension SimulatedEnclave {
    /// `SGX_IOC_ENCLAVE_ADD_PAGES`: EADD `length` bytes at `offset` with `secinfo` (REG with its
    /// permissions, or TCS with none). `source` supplies the contents (zeros when nil; a TCS page
    /// without a source gets a valid TCS with NSSA = 1). Returns (errno or 0, bytes added).
    public func addPages(
        offset: UInt64, length: UInt64, secinfo: SecInfoFlags, source: UnsafeRawBufferPointer? = nil
    ) -> (errno: Int32, count: UInt64) {
        guard region.tryBeginIoctl() else {
            region.count(.ioctlBusy)
            return (EBUSY, 0)
        }
        defer { region.endIoctl() }
        region.count(.ioctlAddPages)
        let flags = region.flags
        guard flags & EDMM_ENCL_CREATED != 0, flags & EDMM_ENCL_INITIALIZED == 0 else { return (EINVAL, 0) }
        guard validRange(offset: offset, length: length) else { return (EINVAL, 0) }
        if let source, source.count < Int(length) { return (EFAULT, 0) }
        // The kernel's SGX_SECINFO_RESERVED_MASK knows only RWX and PAGE_TYPE.
        let raw = secinfo.rawValue
        let perms = secinfo.permissions
        guard raw & ~(SecInfoFlags.permissionMask | SecInfoFlags.pageTypeMask) == 0,
            let type = SGXPageType(rawValue: secinfo.pageTypeField), type == .reg || type == .tcs,
            !(perms.contains(.write) && !perms.contains(.read)),
            !(type == .tcs && perms != .none)
        else { return (EINVAL, 0) }
        let vmMax: PagePermissions = type == .tcs ? perms.union(.rw) : perms
        var c: UInt64 = 0
        while c < length {
            let page = (offset + c) >> Page.shift
            let result: Int32? = try? region.withLock { () -> Int32 in
                guard let e = region.entry(page, create: true) else { return EFAULT }
                // xa_insert of an existing address fails with -EBUSY.
                if region.word(e).present { return EBUSY }
                // sgx_alloc_epc_page() found nothing to reclaim.
                guard makeResident(e, page: page, grows: true) else { return ENOMEM }
                if let dst = region.contentPointer(page) {
                    if let source {
                        dst.copyMemory(from: source.baseAddress! + Int(c), byteCount: Int(Page.size))
                    } else if type == .tcs {
                        TCSLayout.writeDefault(at: dst)
                    }
                }
                let mapGen = region.word(e).mapGen
                region.store(.newPage(type: type, epcm: perms, vmMax: vmMax, pending: false, mapGen: mapGen), e)
                region.header.pointee.present_pages &+= 1
                region.count(.eadd)
                return 0
            }
            guard let result else { return (EIO, c) }
            if result != 0 { return (result, c) }
            c += Page.size
        }
        return (0, c)
    }

    /// `SGX_IOC_ENCLAVE_INIT` (EINIT always succeeds: there is no launch policy to model).
    /// Returns 0 or EINVAL when already initialized.
    public func initialize() -> Int32 {
        guard region.tryBeginIoctl() else {
            region.count(.ioctlBusy)
            return EBUSY
        }
        defer { region.endIoctl() }
        region.count(.ioctlInit)
        let flags = region.flags
        guard flags & EDMM_ENCL_CREATED != 0, flags & EDMM_ENCL_INITIALIZED == 0 else { return EINVAL }
        region.count(.einit)
        _ = machine.locked { machine.markInitialized(owner: index) }
        region.setFlag(EDMM_ENCL_INITIALIZED)
        return 0
    }

    /// `sgx_validate_offset_length()`.
    func validRange(offset: UInt64, length: UInt64) -> Bool {
        guard offset % Page.size == 0, length != 0, length % Page.size == 0 else { return false }
        let (end, overflow) = offset.addingReportingOverflow(length)
        return !overflow && end - Page.size < size
    }

    // MARK: mmap / mprotect / munmap (this process's VMAs)

    /// `mmap(address, length, prot, (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_FIXED, fd, 0)`.
    /// Returns 0 or the errno: EINVAL for MAP_PRIVATE or a bad range, EACCES outside ELRANGE
    /// after EINIT or beyond an existing page's `vm_max_prot_bits`.
    public func mmap(address: UInt64, length: UInt64, protection: PagePermissions, shared: Bool = true) -> Int32 {
        guard shared else { return EINVAL }
        guard let end = mappingEnd(address: address, length: length) else { return EINVAL }
        if let denied = mayMap(address, end, protection) { return denied }
        local.withLock { $0.space.map(address, end, prot: protection, base: base) }
        if !mappedNoted.exchange(true, ordering: .relaxed) { machine.noteMapped(index: index, incarnation: incarnation) }
        return 0
    }

    /// `mprotect` on this enclave's mapping: ENOMEM where nothing is mapped, EACCES by the
    /// driver's `sgx_vma_mprotect()` rules. Never touches the EPCM.
    public func mprotect(address: UInt64, length: UInt64, protection: PagePermissions) -> Int32 {
        guard let end = mappingEnd(address: address, length: length) else { return EINVAL }
        guard local.withLock({ $0.space.isFullyMapped(address, end) }) else { return ENOMEM }
        if let denied = mayMap(address, end, protection) { return denied }
        local.withLock { $0.space.protect(address, end, prot: protection) }
        return 0
    }

    public func munmap(address: UInt64, length: UInt64) -> Int32 {
        guard let end = mappingEnd(address: address, length: length) else { return EINVAL }
        local.withLock { $0.space.unmap(address, end, base: base) }
        return 0
    }

    private func mappingEnd(address: UInt64, length: UInt64) -> UInt64? {
        guard address % Page.size == 0, length > 0 else { return nil }
        let (end, overflow) = address.addingReportingOverflow(roundUp(length, to: Page.size))
        return overflow ? nil : end
    }

    /// `sgx_encl_may_map()`: after EINIT the range must lie in ELRANGE; every existing page must
    /// allow the requested protections; holes allow anything.
    private func mayMap(_ start: UInt64, _ end: UInt64, _ prot: PagePermissions) -> Int32? {
        if region.isInitialized, start < base || end > base + size { return EACCES }
        let lo = max(start, base)
        let hi = min(end, base + size)
        guard lo < hi else { return nil }
        let denied: Bool =
            (try? region.withLock { () -> Bool in
                var denied = false
                region.forEachAllocatedEntry(from: (lo - base) >> Page.shift, to: (hi - base) >> Page.shift) { _, e in
                    let w = region.word(e)
                    if w.present, !w.vmMaxProt.isSuperset(of: prot) { denied = true }
                }
                return denied
            }) ?? true
        return denied ? EACCES : nil
    }
}
